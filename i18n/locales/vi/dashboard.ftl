# Danh mục Poros (tiếng Việt): bảng theo dõi
# Bảng theo dõi (hub/assets/dashboard.html, app.js), trang từ chối truy cập và tệp CSV xuất ra.
# Trình duyệt nhận các mẫu này (`GET /dashboard/messages/vi.json`) và tự điền từng { $biến }
# bằng số, tỷ lệ phần trăm và ngày tháng đã định dạng theo tiếng Việt: chỉ dùng biến đơn, không
# dùng bộ chọn (i18n/tests/catalogue.rs).

dashboard-title = Poros — bảng theo dõi trục liên thông văn bản quốc gia
dashboard-subtitle = trục liên thông văn bản quốc gia
dashboard-from = Từ
dashboard-to = đến
dashboard-show = Xem
dashboard-csv = CSV
dashboard-csv-hint = Tải bảng các cơ quan trong khoảng thời gian này dưới dạng CSV (UTF-8, mở được bằng phần mềm bảng tính)
dashboard-updated = cập nhật lúc { $time }
dashboard-language = Ngôn ngữ
dashboard-error = Không tải được số liệu: { $error }

dashboard-card-delivery = Tỷ lệ chuyển thành công
dashboard-card-ontime = Đúng hạn
dashboard-card-electronic = Trao đổi điện tử
dashboard-card-registered = Vào sổ đúng hạn
dashboard-card-outstanding = Chưa xử lý xong
dashboard-card-connected = Cơ quan đã kết nối
dashboard-card-documents = Văn bản

dashboard-delivery-sub = { $delivered } trên { $due } lượt chuyển có biên nhận hợp lệ; { $pending } đang chờ, { $rejected } bị từ chối, { $expired } hết hạn
dashboard-ontime-sub = { $on_time } đúng hạn, { $late } trễ hạn (mục tiêu { $target }), { $overdue } quá hạn
dashboard-electronic-sub = chỉ trao đổi bằng giấy (theo báo cáo): { $sent } gửi đi, { $received } nhận về
dashboard-registered-sub = { $registered } trên { $delivered } văn bản đã nhận được vào sổ trong { $days } ngày làm việc; trung vị từ khi nhận đến khi hoàn thành { $median }
dashboard-outstanding-sub = chưa hoàn thành, theo số ngày kể từ khi nhận: { $bands }
dashboard-connected-sub = { $rate } cơ quan đã đăng ký có kết nối trong kỳ; { $now } đang trực tuyến
dashboard-range = { $from } – { $to }

dashboard-age-under-1d = dưới 1 ngày
dashboard-age-1-to-3d = 1 đến 3 ngày
dashboard-age-3-to-7d = 3 đến 7 ngày
dashboard-age-7-to-30d = 7 đến 30 ngày
dashboard-age-over-30d = trên 30 ngày
dashboard-age-band = { $band }: { $count }

dashboard-trend-heading = Tỷ lệ chuyển thành công trong 30 ngày qua (toàn quốc)
dashboard-trend-label = Tỷ lệ chuyển thành công toàn quốc của từng ngày trong 30 ngày qua
dashboard-trend-point = { $day }: { $rate } ({ $delivered }/{ $due })

dashboard-group = Nhóm
dashboard-all = tất cả
dashboard-search = Tìm
dashboard-search-placeholder = mã hoặc tên
dashboard-alert-note = tô màu: dưới { $limit } chuyển thành công hoặc trao đổi điện tử
dashboard-sort-hint = Sắp xếp theo cột này (bấm lần nữa để đảo chiều)

dashboard-col-scope = Mã cơ quan
dashboard-col-name = Tên
dashboard-col-state = Trạng thái
dashboard-col-sent = Đã gửi
dashboard-col-due = Phải nhận
dashboard-col-delivery = % chuyển thành công
dashboard-col-ontime = % đúng hạn
dashboard-col-rejected = Bị từ chối
dashboard-col-pending = Đang chờ
dashboard-col-overdue = Quá hạn
dashboard-col-electronic = % điện tử
dashboard-col-registered = % vào sổ đúng hạn
dashboard-col-median = Trung vị đến hoàn thành
dashboard-col-outstanding = Chưa xong
dashboard-col-online = Trực tuyến

dashboard-state-pending = chờ kích hoạt
dashboard-state-active = hoạt động
dashboard-state-suspended = tạm ngừng
dashboard-state-revoked = đã thu hồi
dashboard-online-yes = đang kết nối với trục
dashboard-online-no = không kết nối với trục

# Trang trình duyệt nhận được khi không có thông tin xác thực giám sát hợp lệ.
dashboard-refused-title = Cần thông tin xác thực giám sát
dashboard-refused-body = Hãy mở trang này theo dạng { $url }; quản trị viên trục cấp mã bằng lệnh { $command }.

# Tiêu đề cột của tệp CSV (`/api/v1/stats?format=csv`); giá trị giữ dạng máy đọc được (mã,
# dấu chấm thập phân, tỷ lệ tính bằng phần trăm).
dashboard-csv-scope = Phạm vi
dashboard-csv-name = Tên
dashboard-csv-group = Nhóm
dashboard-csv-state = Trạng thái
dashboard-csv-sent = Đã gửi
dashboard-csv-received = Đã nhận
dashboard-csv-due = Lượt phải chuyển
dashboard-csv-delivered = Đã chuyển
dashboard-csv-on-time = Đúng hạn
dashboard-csv-late = Trễ hạn
dashboard-csv-rejected = Bị từ chối
dashboard-csv-expired = Hết hạn
dashboard-csv-pending = Đang chờ
dashboard-csv-overdue = Quá hạn
dashboard-csv-delivery-rate = Tỷ lệ chuyển thành công (%)
dashboard-csv-on-time-rate = Tỷ lệ đúng hạn (%)
dashboard-csv-paper-sent = Gửi chỉ bằng giấy
dashboard-csv-paper-received = Nhận chỉ bằng giấy
dashboard-csv-electronic-rate = Tỷ lệ trao đổi điện tử (%)
dashboard-csv-avg-latency-ms = Thời gian chuyển trung bình (ms)
dashboard-csv-registered-in-time-rate = Vào sổ đúng hạn (%)
dashboard-csv-median-completion-secs = Trung vị từ khi nhận đến khi hoàn thành (giây)
dashboard-csv-completed = Đã hoàn thành
dashboard-csv-outstanding = Chưa hoàn thành
