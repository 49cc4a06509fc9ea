"""The Slack adapter (slack-bolt): commands, approvals, notifications in chat.

Like the web pages, it only parses, calls one service and renders; permission
checks happen in the services, with the console user the Slack user is linked to.
"""
