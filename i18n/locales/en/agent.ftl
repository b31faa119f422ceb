# Poros catalogue (en): agent
# The agent's local API errors (node-agent/src/refusal.rs). The English text is the error's
# Display text (its log line); a client reads the answer's `code`, never these words.

agent-err-body-unreadable = reading the request body failed
agent-err-request-too-large = length limit exceeded: the request body is over { $limit } bytes
agent-err-no-route = no route for { $method } { $path }
agent-err-invalid = { $detail }
agent-err-page-limit = limit must be between 1 and { $max } (got { $got })
agent-err-page-cursor = { $cursor } is not a listing cursor (use the cursor of the previous page)
agent-err-bad-document-id = { $id } is not a document ID
agent-err-no-document = no document { $id } here
agent-err-not-in-inbox = no document { $id } in the inbox
agent-err-quarantined = document { $id } is quarantined
agent-err-body-gone = body not kept
agent-err-too-large = document body exceeds the limit of { $limit } bytes
agent-err-store-fault = not stored: agent { $fault }; retry later
agent-err-store = agent store error (details in the agent's log)
agent-err-internal = { $detail }
agent-err-bad-month = month { $month } is not YYYY-MM
agent-err-events-query = `after` and `limit` must be at least 0
agent-err-not-connected = not connected to the hub; retry when the agent is connected
agent-err-hub-refused = { $detail }
agent-err-rule = { $detail }
agent-err-rule-unknown-document = { $detail }

