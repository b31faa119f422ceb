# Poros catalogue (en): dashboard
# The monitoring dashboard (hub/assets/dashboard.html, app.js), its refusal page and its CSV
# export. The browser receives these as patterns (`GET /dashboard/messages/en.json`) and fills
# each { $slot } itself, with numbers, percentages and dates already formatted for the reader's
# language: plain slots only, no selectors (i18n/tests/catalogue.rs).

dashboard-title = Poros — national exchange dashboard
dashboard-subtitle = national document exchange
dashboard-from = From
dashboard-to = to
dashboard-show = Show
dashboard-csv = CSV
dashboard-csv-hint = Download the agency table for this range as CSV (UTF-8, opens in spreadsheet software)
dashboard-updated = updated { $time }
dashboard-language = Language
dashboard-error = Cannot load figures: { $error }

dashboard-card-delivery = Delivery rate
dashboard-card-ontime = On time
dashboard-card-electronic = Electronic exchange
dashboard-card-registered = Registered in time
dashboard-card-outstanding = Outstanding
dashboard-card-connected = Connected agencies
dashboard-card-documents = Documents

dashboard-delivery-sub = { $delivered } of { $due } deliveries with a verified receipt; { $pending } pending, { $rejected } rejected, { $expired } expired
dashboard-ontime-sub = { $on_time } on time, { $late } late (target { $target }), { $overdue } overdue
dashboard-electronic-sub = paper-only reported: { $sent } sent, { $received } received
dashboard-registered-sub = { $registered } of { $delivered } delivered documents registered within { $days } working day(s); median delivery to completed { $median }
dashboard-outstanding-sub = not completed, by days since delivery: { $bands }
dashboard-connected-sub = { $rate } of registered agencies connected in the period; { $now } online now
dashboard-range = { $from } – { $to }

dashboard-age-under-1d = under 1 day
dashboard-age-1-to-3d = 1 to 3 days
dashboard-age-3-to-7d = 3 to 7 days
dashboard-age-7-to-30d = 7 to 30 days
dashboard-age-over-30d = over 30 days
dashboard-age-band = { $band }: { $count }

dashboard-trend-heading = Delivery rate, last 30 days (national)
dashboard-trend-label = National delivery rate for each of the last 30 days
dashboard-trend-point = { $day }: { $rate } ({ $delivered }/{ $due })

dashboard-group = Group
dashboard-all = all
dashboard-search = Search
dashboard-search-placeholder = code or name
dashboard-alert-note = highlighted: below { $limit } delivery or electronic exchange
dashboard-sort-hint = Sort by this column (click again to reverse)

dashboard-col-scope = Agency
dashboard-col-name = Name
dashboard-col-state = State
dashboard-col-sent = Sent
dashboard-col-due = Due to it
dashboard-col-delivery = Delivery %
dashboard-col-ontime = On time %
dashboard-col-rejected = Rejected
dashboard-col-pending = Pending
dashboard-col-overdue = Overdue
dashboard-col-electronic = Electronic %
dashboard-col-registered = Registered in time %
dashboard-col-median = Median to completed
dashboard-col-outstanding = Outstanding
dashboard-col-online = Online

dashboard-state-pending = pending
dashboard-state-active = active
dashboard-state-suspended = suspended
dashboard-state-revoked = revoked
dashboard-online-yes = connected to the hub now
dashboard-online-no = not connected to the hub now

# The page a browser gets without a valid monitor credential.
dashboard-refused-title = Monitor credential required
dashboard-refused-body = Open this page as { $url }; the hub administrator issues tokens with { $command }.

# Column headers of the CSV export (`/api/v1/stats?format=csv`); the values stay
# machine-readable (codes, dot decimals, rates in percent).
dashboard-csv-scope = Scope
dashboard-csv-name = Name
dashboard-csv-group = Group
dashboard-csv-state = State
dashboard-csv-sent = Sent
dashboard-csv-received = Received
dashboard-csv-due = Deliveries due
dashboard-csv-delivered = Delivered
dashboard-csv-on-time = On time
dashboard-csv-late = Late
dashboard-csv-rejected = Rejected
dashboard-csv-expired = Expired
dashboard-csv-pending = Pending
dashboard-csv-overdue = Overdue
dashboard-csv-delivery-rate = Delivery rate (%)
dashboard-csv-on-time-rate = On-time rate (%)
dashboard-csv-paper-sent = Sent on paper only
dashboard-csv-paper-received = Received on paper only
dashboard-csv-electronic-rate = Electronic exchange rate (%)
dashboard-csv-avg-latency-ms = Mean delivery time (ms)
dashboard-csv-registered-in-time-rate = Registered in time (%)
dashboard-csv-median-completion-secs = Median delivery to completed (s)
dashboard-csv-completed = Completed
dashboard-csv-outstanding = Outstanding
