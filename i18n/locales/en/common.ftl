# Poros catalogue (English): words shared by every part of the product.
# A message's ID names its area first (common-, dashboard-, hub-, agent-); every ID here exists
# in locales/vi/ with the same variables (i18n/tests/catalogue.rs).

common-lang-en = English
common-lang-vi = Tiếng Việt
common-yes = yes
common-no = no
common-documents = { $count } documents

# backup and restore (poros-hub and poros-agent alike; transport/src/backup_text.rs)
common-backup-written = backup written to { $file } ({ $bytes } bytes, archive format { $format })
common-backup-snapshot-hub-online = snapshot at { $time } (taken by the running hub): { $documents } documents, { $bodies } body files
common-backup-snapshot-hub-offline = snapshot at { $time } (hub stopped): { $documents } documents, { $bodies } body files
common-backup-snapshot-agent-online = snapshot at { $time } (taken by the running agent): { $documents } documents, { $bodies } body files
common-backup-snapshot-agent-offline = snapshot at { $time } (agent stopped): { $documents } documents, { $bodies } body files
common-backup-keys-hub = WARNING: it holds the deployment's private keys and admin credential: keep it like the keys
common-backup-keys-agent = WARNING: it holds the agency's private keys and secrets ({ $files }): keep it like the keys
common-backup-no-keys-hub = no private keys inside: keep pki/*.key and admin.token in your key backup
common-backup-no-keys-agent = no private keys inside: keep keys/*.key (and vdxp.secret) in your key backup
common-restore-done = restored { $from } into { $dir }: { $documents } documents, { $bodies } body files, verified
common-restore-after-hub = the backup's snapshot is from { $time }; when the hub runs, agents submit again what it accepted since
common-restore-after-agent = the backup's snapshot is from { $time }: what this agent sent or received after it is not in it (docs/backup.md, "Agents")
common-restore-missing-keys-hub = the backup holds no private keys: copy { $files } from your key backup into { $dir } before `poros-hub run`
common-restore-missing-keys-agent = the backup holds no private keys: copy { $files } from your key backup into { $dir } before `poros-agent run`
