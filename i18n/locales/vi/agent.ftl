# Poros catalogue (vi): agent
# Lỗi API cục bộ của agent (node-agent/src/refusal.rs). Chương trình đọc `code` của câu trả lời,
# không đọc lời văn; phần chi tiết ($detail) là lời của thư viện hoặc của trục, giữ nguyên.

agent-err-body-unreadable = Không đọc được nội dung yêu cầu
agent-err-request-too-large = Nội dung yêu cầu vượt quá giới hạn { $limit } byte
agent-err-no-route = Không có đường dẫn { $method } { $path }
agent-err-invalid = Yêu cầu không hợp lệ: { $detail }
agent-err-page-limit = limit phải từ 1 đến { $max } (nhận được { $got })
agent-err-page-cursor = { $cursor } không phải con trỏ danh sách (hãy dùng con trỏ của trang trước)
agent-err-bad-document-id = { $id } không phải mã văn bản
agent-err-no-document = Không có văn bản { $id } ở đây
agent-err-not-in-inbox = Không có văn bản { $id } trong hộp thư đến
agent-err-quarantined = Văn bản { $id } đang bị cách ly
agent-err-body-gone = Nội dung văn bản không còn được lưu giữ
agent-err-too-large = Nội dung văn bản vượt quá giới hạn { $limit } byte
agent-err-store-fault = Chưa lưu được: kho dữ liệu của agent gặp sự cố ({ $fault }); hãy thử lại sau
agent-err-store = Lỗi kho dữ liệu của agent (chi tiết trong nhật ký của agent)
agent-err-internal = Lỗi bên trong agent: { $detail }
agent-err-bad-month = Tháng { $month } không đúng dạng YYYY-MM
agent-err-events-query = `after` và `limit` không được nhỏ hơn 0
agent-err-not-connected = Chưa kết nối tới trục; hãy thử lại khi agent đã kết nối
agent-err-hub-refused = Trục từ chối yêu cầu: { $detail }
agent-err-rule = Quy tắc trao đổi văn bản không cho phép thao tác này: { $detail }
agent-err-rule-unknown-document = Văn bản không có ở đây: { $detail }

