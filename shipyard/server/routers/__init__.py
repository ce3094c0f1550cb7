"""One router per component of the platform server's REST API."""
