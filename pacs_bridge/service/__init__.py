"""The PACS bridge service: receive studies, analyse each complete study once, send results.

Modules, one job each: `config` (TOML), `spool` (durable instance files), `journal`
(SQLite study states), `receive` (validate + spool + journal one instance), `scp`
(DIMSE listener), `completion` (inactivity timeout), `routing` (what is analysed),
`worker` (analyse + send with retries), `sender` (C-STORE / STOW-RS), `status_http`
(health and status JSON), `pull` and `watch` (query/retrieve), `service` (wiring).
"""
