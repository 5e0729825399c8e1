"""The intake stages, in pipeline order (Alertmanager's ``notify.go`` reads the same way):

``floor`` (severity floor) → ``silence`` → ``inhibition`` → ``routing`` → ``dedup`` →
``enrich`` → ``grouping``. Each does one thing to an event or a batch and holds no NATS
handles except the silence watch and the enrichment RPC; ``intake`` runs them in order.
"""
