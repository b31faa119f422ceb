# Danh mục Poros (tiếng Việt): các từ dùng chung cho mọi phần của sản phẩm.
# Mỗi mã thông điệp ở đây có trong locales/en/ với cùng các biến (i18n/tests/catalogue.rs).

common-lang-en = English
common-lang-vi = Tiếng Việt
common-yes = có
common-no = không
common-documents = { $count } văn bản
