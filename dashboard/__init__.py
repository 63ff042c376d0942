"""The operators' front end: server-rendered pages over every app, their reads, and login links."""
