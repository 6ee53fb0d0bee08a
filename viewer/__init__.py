"""The browser viewer: HTML pages and ES modules (assets/), shipped as package data and
served by server/web/static.py. No Python here beyond this marker."""
