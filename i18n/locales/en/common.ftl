# Poros catalogue (English): words shared by every part of the product.
# A message's ID names its area first (common-, dashboard-, hub-, agent-); every ID here exists
# in locales/vi/ with the same variables (i18n/tests/catalogue.rs).

common-lang-en = English
common-lang-vi = Tiếng Việt
common-yes = yes
common-no = no
common-documents = { $count } documents
