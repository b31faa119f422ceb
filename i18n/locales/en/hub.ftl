# Poros catalogue (en): hub
