"""Quality control: QC scores per facility × exam item × month and the mutual-recognition list
(issue 20 items 2 and 3). Arithmetic and rules are pure (worklists/quality.py,
worklists/recognition.py); this package runs them against storage, on a schedule and on demand.
"""
