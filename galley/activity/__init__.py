"""The activity log: who wrote what, and who was refused, per subscription (issue 9, item 8).

entry.py holds the plain records and rules; log.py keeps them (a bounded queue written by one
background thread, pruned after the retention period). The api layer records each request
(api/activity_recorder.py) and serves the log as Azure's activity log
(api/routes/activity_log.py); nothing in the API alters or deletes an entry.
"""
