# Poros catalogue (vi): dashboard
