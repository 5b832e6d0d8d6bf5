"""Orthanc: the managed child process, the async REST client and the change-feed vocabulary."""
