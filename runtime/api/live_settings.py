"""What a SIGHUP may change in the running HTTP API: the tokens (file and scopes) and the
readiness rule. The rest (bind address, TLS, limits) waits for a restart, and the log
says so: the socket stays bound where it is.
"""

from __future__ import annotations

import logging
from typing import Any

from runtime.api.auth import Tokens, check_bind, load_tokens
from runtime.config import ApiSettings
from runtime.errors import HeadframeError
from runtime.service import InferenceService

log = logging.getLogger(__name__)


def apply_live_api(
    new: ApiSettings, running: ApiSettings, tokens: Tokens, service: InferenceService
) -> ApiSettings:
    """Put ``new``'s tokens into ``tokens`` (unless they fail the bind rule for the
    running address: the old ones stay) and its readiness rule into ``service``; return
    the api settings now in force."""
    # admin_token_file is the CLI's, never the daemon's: nothing waits for a restart
    live: dict[str, Any] = {"readiness": new.readiness, "admin_token_file": new.admin_token_file}
    try:
        loaded = load_tokens(new)
        check_bind(running.host, loaded)  # the socket stays bound where it is
    except HeadframeError as e:
        log.error("reload: keeping the API tokens in force: %s", e.message)
    else:
        tokens.replace(loaded)
        live.update(tokens=new.tokens, tokens_file=new.tokens_file)
        log.info("reload: %d API token(s) in force", len(loaded))
    service.readiness = new.readiness
    if new.model_dump(exclude=set(live)) != running.model_dump(exclude=set(live)):
        log.warning("reload: api settings changed; they take effect at the next restart")
    return running.model_copy(update=live)
