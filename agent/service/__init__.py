"""The service side of ``posdiag run``: what stays resident between check cycles.

``daemon`` (the main loop), ``mqtt`` (the MQTT 5 session), ``outbox`` (the durable queue),
``scheduler`` (periodic timers and the check worker), ``commands`` (remote command parsing),
``payloads`` (the MQTT documents and topics), ``sdnotify`` (systemd notifications) and ``tally``
(rate-limited counting of refusals). Checks, diagnosis and the CLI do not import this package;
the CLI's ``run`` subcommand reaches it lazily, and the daemon calls into them.
"""
