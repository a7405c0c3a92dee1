"""django-q2 tasks of the dataset app: thin, idempotent, taking ids."""

from __future__ import annotations

from labeling.services import webhooks


def webhook_deliver(delivery_id: int) -> str:
    """One attempt at a webhook delivery that is due (retries schedule this again)."""
    delivery = webhooks.webhook_delivery_attempt(delivery_id=delivery_id)
    return delivery.status if delivery else "gone"


def webhooks_resume() -> int:
    """A tick (every ten minutes): deliveries whose task was lost are asked for again."""
    return webhooks.webhook_deliveries_resume()
