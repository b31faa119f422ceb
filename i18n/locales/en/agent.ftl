# Poros catalogue (en): agent
