"""The human study: a web app that records people answering CAPTCHAs, and its database."""
