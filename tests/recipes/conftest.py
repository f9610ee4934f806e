from __future__ import annotations

import pytest

from dmo.search.pool import LocalPool
from dmo.search.proxy import ProxyEvaluator
from dmo.search.searches import create_search, proxy_source, run_search
from search_support import configured


@pytest.fixture(scope="session")
def finished_search(tiny_config, tiny_store, tiny_models, tiny_data):
    base, experts = tiny_models
    search = create_search(tiny_store, configured(tiny_config, search__trials=3), base=base, experts=experts)
    evaluator = ProxyEvaluator(proxy_source(tiny_store, search), data=tiny_data)
    run_search(tiny_store, search, LocalPool(evaluator))
    return search, evaluator


