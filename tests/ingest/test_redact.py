import logging

from ingest.redact import Redactor, RedactingFilter, redact_url_credentials


def test_url_credentials_removed_everywhere_in_text():
    text = "HTTPUnauthorizedError: 401: 'rtsp://admin:S3cret!@10.0.0.5:554/stream1' and rtsps://u@h/x"
    out = redact_url_credentials(text)
    assert "S3cret" not in out and "admin" not in out
    assert "rtsp://***@10.0.0.5:554/stream1" in out and "rtsps://***@h/x" in out


def test_known_secrets_removed_even_outside_urls():
    redactor = Redactor(["canary-7f3a"])
    assert redactor.redact("wrong password canary-7f3a for user") == "wrong password *** for user"


def test_log_filter_redacts_message_arguments_and_tracebacks(caplog):
    redactor = Redactor(["canary-7f3a"])
    logger = logging.getLogger("test.redact")
    handler = logging.Handler()
    records = []
    handler.emit = records.append
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)
    try:
        logger.warning("open %s failed", "rtsp://u:canary-7f3a@h/p")
        try:
            raise ValueError("boom canary-7f3a")
        except ValueError:
            logger.exception("unexpected")
    finally:
        logger.removeHandler(handler)
    rendered = [handler.format(record) for record in records]
    assert len(rendered) == 2
    assert all("canary-7f3a" not in line for line in rendered)
    assert "boom ***" in rendered[1]
