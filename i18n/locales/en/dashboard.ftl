# Poros catalogue (en): dashboard
