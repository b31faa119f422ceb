# Poros catalogue (vi): agent
