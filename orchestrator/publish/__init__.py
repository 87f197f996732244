"""``packshot publish``: a run's images back to the store, exactly once (like :mod:`orchestrator.review`).

- :mod:`~orchestrator.publish.publisher`: ``publish()``, what is chosen and how each product is sent;
- :mod:`~orchestrator.publish.ledger`: what went to which store (``publish_ledger.json``);
- :mod:`~orchestrator.publish.plan`: the planned images and the report;
- :mod:`~orchestrator.publish.targets`: one target per store, :mod:`~orchestrator.publish.shopify` and
  :mod:`~orchestrator.publish.woocommerce`, each over its store client in :mod:`packshot.sources`.
"""

from orchestrator.publish.ledger import LEDGER_NAME, PublishLedger, PublishLedgerError
from orchestrator.publish.plan import PublishError, PublishReport
from orchestrator.publish.publisher import publish
from orchestrator.publish.select import REVIEW_NAME, decision_of, select, select_outputs

__all__ = [
    "LEDGER_NAME",
    "REVIEW_NAME",
    "PublishError",
    "PublishLedger",
    "PublishLedgerError",
    "PublishReport",
    "decision_of",
    "publish",
    "select",
    "select_outputs",
]
