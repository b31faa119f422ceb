# Danh mục Poros (tiếng Việt): các từ dùng chung cho mọi phần của sản phẩm.
# Mỗi mã thông điệp ở đây có trong locales/en/ với cùng các biến (i18n/tests/catalogue.rs).

common-lang-en = English
common-lang-vi = Tiếng Việt
common-yes = có
common-no = không
common-documents = { $count } văn bản

# sao lưu và khôi phục (poros-hub và poros-agent như nhau; transport/src/backup_text.rs)
common-backup-written = đã ghi bản sao lưu vào { $file } ({ $bytes } byte, định dạng lưu trữ { $format })
common-backup-snapshot-hub-online = ảnh chụp lúc { $time } (do hub đang chạy tạo): { $documents } văn bản, { $bodies } tệp nội dung
common-backup-snapshot-hub-offline = ảnh chụp lúc { $time } (hub đã dừng): { $documents } văn bản, { $bodies } tệp nội dung
common-backup-snapshot-agent-online = ảnh chụp lúc { $time } (do agent đang chạy tạo): { $documents } văn bản, { $bodies } tệp nội dung
common-backup-snapshot-agent-offline = ảnh chụp lúc { $time } (agent đã dừng): { $documents } văn bản, { $bodies } tệp nội dung
common-backup-keys-hub = CẢNH BÁO: bản sao lưu chứa khóa bí mật và thông tin xác thực quản trị của hệ thống: hãy bảo quản như chính các khóa
common-backup-keys-agent = CẢNH BÁO: bản sao lưu chứa khóa bí mật và bí mật của cơ quan ({ $files }): hãy bảo quản như chính các khóa
common-backup-no-keys-hub = không chứa khóa bí mật: hãy giữ pki/*.key và admin.token trong bản sao lưu khóa của bạn
common-backup-no-keys-agent = không chứa khóa bí mật: hãy giữ keys/*.key (và vdxp.secret) trong bản sao lưu khóa của bạn
common-restore-done = đã khôi phục { $from } vào { $dir }: { $documents } văn bản, { $bodies } tệp nội dung, đã kiểm tra
common-restore-after-hub = ảnh chụp của bản sao lưu có từ { $time }; khi hub chạy, các agent sẽ gửi lại những gì hub đã chấp nhận từ đó
common-restore-after-agent = ảnh chụp của bản sao lưu có từ { $time }: những gì agent này gửi hoặc nhận sau thời điểm đó không có trong bản sao lưu (docs/backup.md, "Agents")
common-restore-missing-keys-hub = bản sao lưu không chứa khóa bí mật: hãy chép { $files } từ bản sao lưu khóa vào { $dir } trước khi chạy `poros-hub run`
common-restore-missing-keys-agent = bản sao lưu không chứa khóa bí mật: hãy chép { $files } từ bản sao lưu khóa vào { $dir } trước khi chạy `poros-agent run`
