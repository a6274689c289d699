"""payapp.lru.LruCache: bounded, least recently used out first."""

from payapp.lru import LruCache


def test_the_least_recently_used_entry_goes_first():
    cache = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_a_cache_of_size_zero_keeps_nothing():
    cache = LruCache(0)
    cache.put("a", 1)
    assert cache.get("a") is None and len(cache) == 0
