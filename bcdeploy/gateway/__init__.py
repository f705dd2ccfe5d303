"""`bcdeploy gateway`: bcdeploy as a DICOM node between the modality and the PACS.

A Storage SCP (scp.py) writes each mammogram it accepts to a spool and records it (spool.py) before it
answers success; a study is segmented when it has been quiet for `--study-idle` seconds, by the same
run pipeline as `infer` (source.py is its input source); the DICOM results go to the PACS from an
outbox with retries (sender.py, destinations.py); every association, instance and result leaves an
audit line (audit.py). node.py ties them together and owns the process's life (SIGTERM, restart).
"""
