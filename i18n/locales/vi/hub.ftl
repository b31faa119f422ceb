# Poros catalogue (vi): hub
