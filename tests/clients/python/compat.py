"""One run of the client compatibility script with redis-py (tests/client_compat.rs).

Usage: compat.py sync|async 2|3|default PORT READS_PORT

Runs the same steps against whatever listens on PORT (redis-server, or the proxy with
PROXY_FORWARD=all) and READS_PORT (the same redis-server, or a proxy with the default
PROXY_FORWARD=reads), with redis-py's default settings (only `protocol` is chosen when
asked), and prints one JSON line per step: {"step": name, "result": normalised replies}.
The Rust test runs it once against Redis and once against the proxy and compares the lines.
Keys are fixed names: each run gets a redis-server of its own.
"""

import asyncio
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis
import redis.asyncio

# Longer than the proxy's PROXY_IDLE_TIMEOUT_MS in the test (500 ms).
IDLE_PAUSE_S = 1.0
POOL_WORKERS = 8
POOL_KEYS = 40


def norm(value):
    """A reply (or an error) as plain JSON, the same for equal replies."""
    if isinstance(value, Exception):
        return {"error": type(value).__name__, "message": str(value)}
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"set": sorted(json.dumps(norm(v)) for v in value)}
    if isinstance(value, dict):
        pairs = [[norm(k), norm(v)] for k, v in value.items()]
        return {"map": sorted(pairs, key=json.dumps)}
    return value


def emit(step, result):
    print(json.dumps({"step": step, "result": norm(result)}), flush=True)


# Steps as redis-py method calls (name, arguments), run the same way by the sync and the
# asyncio clients. A call's result, or its error, is the step's output.
SETUP = [
    ("set", "str", "v1"),
    ("set", "empty", ""),
    ("hset", "h", None, None, {"f1": "v1", "f2": "v2"}),  # key, value, mapping
    ("rpush", "l", "a", "b", "c"),
    ("sadd", "s", "x", "y"),
    ("set", "plain", "p"),
]
GET_HIT = [("get", "str"), ("get", "str")]
GET_MISS = [("get", "missing"), ("get", "missing")]
GET_EMPTY = [("get", "empty"), ("get", "empty")]
GET_WRONGTYPE = [("get", "l")]
MGET = [("mget", ["str", "l", "missing", "empty"]), ("mget", ["str", "l", "missing", "empty"])]
PIPELINE = [
    ("set", "p1", "1"),
    ("get", "p1"),
    ("incr", "p1"),
    ("get", "p1"),
    ("get", "missing"),
    ("mget", ["p1", "str", "l"]),
    ("exists", "p1", "str", "missing"),
    ("strlen", "str"),
]
CLIENT_NAME = [("client_setname", "compat-client"), ("client_getname",)]
FORWARDED_READS = [
    ("exists", "str", "h", "missing", "str"),
    ("hget", "h", "f1"),
    ("hget", "h", "nope"),
    ("hgetall", "h"),
    ("hlen", "h"),
    ("lrange", "l", 0, -1),
    ("smembers", "s"),
    ("type", "h"),
    ("ttl", "plain"),
    ("ttl", "missing"),
    ("pttl", "missing"),
    ("strlen", "str"),
    ("strlen", "missing"),
    ("dbsize",),
]
FORWARDED_WRITES = [
    ("set", "str", "v2"),
    ("get", "str"),
    ("delete", "empty"),
    ("get", "empty"),
    ("hset", "h", "f3", "v3"),
    ("hget", "h", "f3"),
    ("incr", "n"),
    ("incr", "n"),
    ("get", "n"),
    ("expire", "plain", 1000),
]
TRANSACTION = [("incr", "tx:counter"), ("get", "tx:counter")]
# Pub/sub: one subscriber to a channel, one to a pattern, and what a third connection
# publishes, in order; the last message, on the subscribed channel, reaches both and ends
# their reading.
PUBSUB_CHANNEL = "news:sport"
PUBSUB_PATTERN = "news:*"
PUBLISHED = [
    ("news:sport", "goal"),
    ("news:weather", "rain"),
    ("other", "unseen"),
    ("news:sport", ""),
    ("news:sport", "caf\u00e9 \u6f22"),
    ("news:sport", "end"),
]
PUBSUB_WAIT_S = 5.0
AFTER_MULTI = [("get", "str"), ("ping",)]


def call_sync(client, call):
    name, *args = call
    try:
        return getattr(client, name)(*args)
    except redis.RedisError as e:
        return e


async def call_async(client, call):
    name, *args = call
    try:
        return await getattr(client, name)(*args)
    except redis.RedisError as e:
        return e


def ttl_is_long(ttl):
    return isinstance(ttl, int) and ttl > 900


def watch_transaction(r, port, kwargs):
    """redis-py's transaction() with WATCH, once alone and once with another client
    writing the watched key between WATCH and EXEC (WatchError)."""
    r.set("tx:watched", "1")

    def bump(pipe):
        value = int(pipe.get("tx:watched"))
        pipe.multi()
        pipe.set("tx:watched", value + 1)

    alone = r.transaction(bump, "tx:watched")
    other = redis.Redis(host="127.0.0.1", port=port, **kwargs)
    pipe = r.pipeline()
    try:
        pipe.watch("tx:watched")
        pipe.get("tx:watched")
        other.set("tx:watched", "10")
        pipe.multi()
        pipe.set("tx:watched", "lost")
        conflict = pipe.execute()
    except redis.WatchError as e:
        conflict = e
    finally:
        pipe.reset()
    return [norm(alone), norm(conflict), norm(r.get("tx:watched"))]


def blpop_woken(r, port, kwargs):
    """blpop with a timeout, woken by another client's push 200 ms later, then one that
    times out (a job queue's worker loop)."""
    r.delete("queue:jobs")
    other = redis.Redis(host="127.0.0.1", port=port, **kwargs)
    timer = threading.Timer(0.2, lambda: other.rpush("queue:jobs", "job-1"))
    timer.start()
    got = r.blpop(["queue:jobs"], timeout=5)
    timer.join()
    empty = r.blpop(["queue:empty"], timeout=0.3)
    other.close()
    return [norm(got), norm(empty)]


async def blpop_woken_async(r, port, kwargs):
    """blpop_woken with redis.asyncio."""
    await r.delete("queue:jobs")
    other = redis.asyncio.Redis(host="127.0.0.1", port=port, **kwargs)

    async def push():
        await asyncio.sleep(0.2)
        await other.rpush("queue:jobs", "job-1")

    got, _ = await asyncio.gather(r.blpop(["queue:jobs"], timeout=5), push())
    empty = await r.blpop(["queue:empty"], timeout=0.3)
    await other.aclose()
    return [norm(got), norm(empty)]


def pubsub_message(m):
    """A redis-py pub/sub message (or the lack of one within the wait) as a step result."""
    if m is None:
        return "timeout"
    return norm([m["type"], m["pattern"], m["channel"], m["data"]])


def received_until_end(messages):
    """Whether the last of `messages` is the last message published."""
    return bool(messages) and messages[-1][-1] == PUBLISHED[-1][1]


def published_to_someone(count):
    """PUBLISH's count of receivers: through the proxy all its subscribers of a channel are
    one receiver in Redis (one subscriber connection for all), so only whether a message
    reached someone is compared."""
    return count >= 1


# The pub/sub group's steps, in the order both its sync and asyncio versions return them.
PUBSUB_STEPS = (
    "pubsub_subscribed",
    "pubsub_published",
    "pubsub_received",
    "pubsub_ping_subscribed",
    "pubsub_unsubscribed",
    "pubsub_after_unsubscribe",
)


def pubsub_steps(r, port, kwargs):
    """Two subscribers on connections of their own (redis-py's pubsub()), one to a channel
    and one to a pattern, each confirmed before anything is published; a third connection
    (r) publishes; each subscriber's messages in order; PING while subscribed; then they
    unsubscribe and their connection answers PING and GET as any other."""
    clients = [redis.Redis(host="127.0.0.1", port=port, **kwargs) for _ in range(2)]
    by_channel, by_pattern = subscribers = [c.pubsub() for c in clients]
    by_channel.subscribe(PUBSUB_CHANNEL)
    by_pattern.psubscribe(PUBSUB_PATTERN)
    confirmed = [pubsub_message(ps.get_message(timeout=PUBSUB_WAIT_S)) for ps in subscribers]
    published = [published_to_someone(r.publish(ch, data)) for ch, data in PUBLISHED]
    received = []
    for ps in subscribers:
        got, deadline = [], time.monotonic() + PUBSUB_WAIT_S
        while not received_until_end(got) and time.monotonic() < deadline:
            m = ps.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if m is not None:
                got.append(pubsub_message(m))
        received.append(got if received_until_end(got) else got + ["timeout"])
    by_channel.ping()
    ping = pubsub_message(by_channel.get_message(timeout=PUBSUB_WAIT_S))
    by_channel.unsubscribe()
    by_pattern.punsubscribe()
    left = [pubsub_message(ps.get_message(timeout=PUBSUB_WAIT_S)) for ps in subscribers]
    # get_message reads only while subscribed: parse_response reads any reply.
    after = []
    for ps in subscribers:
        ps.ping()
        ps.execute_command("GET", "str")
        after.append([ps.parse_response(block=False, timeout=PUBSUB_WAIT_S) for _ in range(2)])
    for ps, c in zip(subscribers, clients):
        ps.close()
        c.close()
    return list(zip(PUBSUB_STEPS, (confirmed, published, received, ping, left, after)))


async def pubsub_steps_async(r, port, kwargs):
    """pubsub_steps with redis.asyncio."""
    clients = [redis.asyncio.Redis(host="127.0.0.1", port=port, **kwargs) for _ in range(2)]
    by_channel, by_pattern = subscribers = [c.pubsub() for c in clients]
    await by_channel.subscribe(PUBSUB_CHANNEL)
    await by_pattern.psubscribe(PUBSUB_PATTERN)
    confirmed = [
        pubsub_message(await ps.get_message(timeout=PUBSUB_WAIT_S)) for ps in subscribers
    ]
    published = [published_to_someone(await r.publish(ch, data)) for ch, data in PUBLISHED]
    received = []
    for ps in subscribers:
        got, deadline = [], time.monotonic() + PUBSUB_WAIT_S
        while not received_until_end(got) and time.monotonic() < deadline:
            m = await ps.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if m is not None:
                got.append(pubsub_message(m))
        received.append(got if received_until_end(got) else got + ["timeout"])
    await by_channel.ping()
    ping = pubsub_message(await by_channel.get_message(timeout=PUBSUB_WAIT_S))
    await by_channel.unsubscribe()
    await by_pattern.punsubscribe()
    left = [pubsub_message(await ps.get_message(timeout=PUBSUB_WAIT_S)) for ps in subscribers]
    after = []
    for ps in subscribers:
        await ps.ping()
        await ps.execute_command("GET", "str")
        after.append(
            [await ps.parse_response(block=False, timeout=PUBSUB_WAIT_S) for _ in range(2)]
        )
    for ps, c in zip(subscribers, clients):
        await ps.aclose()
        await c.aclose()
    return list(zip(PUBSUB_STEPS, (confirmed, published, received, ping, left, after)))


def client_side_cache_refused(port):
    """redis-py's client-side cache (RESP3 and cache_config, sync clients only: redis.asyncio
    has none) checks the server's version in HELLO's answer at connect, and refuses before
    Redis 7.4: the oracle's 7.0 and the proxy's (it says 7.0.0) alike. The refusal, then a
    client without the cache on the same port keeps working."""
    from redis.cache import CacheConfig

    c = redis.Redis(host="127.0.0.1", port=port, protocol=3, cache_config=CacheConfig())
    try:
        refused = c.ping()
    except redis.RedisError as e:
        refused = e
    finally:
        c.close()
    plain = redis.Redis(host="127.0.0.1", port=port, protocol=3)
    after = call_sync(plain, ("get", "str"))
    plain.close()
    return [norm(refused), norm(after)]


def run_sync(port, reads_port, kwargs):
    r = redis.Redis(host="127.0.0.1", port=port, **kwargs)
    reads = redis.Redis(host="127.0.0.1", port=reads_port, **kwargs)

    def steps(name, calls):
        emit(name, [call_sync(r, c) for c in calls])

    steps("setup", SETUP)
    steps("get_hit", GET_HIT)
    steps("get_miss", GET_MISS)
    steps("get_empty", GET_EMPTY)
    steps("get_wrongtype", GET_WRONGTYPE)
    steps("mget_wrongtype_in_the_middle", MGET)

    pipe = r.pipeline(transaction=False)
    for c in PIPELINE:
        call_sync(pipe, c)
    emit("pipeline", call_sync(pipe, ("execute",)))

    def worker(i):
        key = f"pool:{i}"
        return [r.set(key, str(i)), r.get(key), r.incr("pool:counter")]

    with ThreadPoolExecutor(POOL_WORKERS) as ex:
        results = list(ex.map(worker, range(POOL_KEYS)))
    emit("pool", [[x[0], x[1]] for x in results] + [r.get("pool:counter")])

    steps("client_name", CLIENT_NAME)
    steps("forwarded_reads", FORWARDED_READS)
    emit("scan", sorted(r.scan_iter(count=1000)))
    steps("forwarded_writes", FORWARDED_WRITES)
    emit("ttl_after_expire", ttl_is_long(r.ttl("plain")))

    emit("write_refused", call_sync(reads, ("set", "refused", "x")))
    emit("reads_port_keeps_working", [call_sync(reads, ("get", "str"))])

    tx = r.pipeline(transaction=True)
    for c in TRANSACTION:
        call_sync(tx, c)
    emit("multi", call_sync(tx, ("execute",)))
    steps("multi_counter_after", [("get", "tx:counter")])
    emit("watch_transaction", watch_transaction(r, port, kwargs))
    steps("after_multi", AFTER_MULTI)
    emit("blpop", blpop_woken(r, port, kwargs))
    for name, result in pubsub_steps(r, port, kwargs):
        emit(name, result)
    emit("client_side_cache_refused", client_side_cache_refused(port))

    before = r.client_id()
    time.sleep(IDLE_PAUSE_S)
    after = r.client_id()
    emit("idle", {"same_connection": before == after, "get": r.get("str")})


async def run_async(port, reads_port, kwargs):
    r = redis.asyncio.Redis(host="127.0.0.1", port=port, **kwargs)
    reads = redis.asyncio.Redis(host="127.0.0.1", port=reads_port, **kwargs)

    async def steps(name, calls):
        emit(name, [await call_async(r, c) for c in calls])

    await steps("setup", SETUP)
    await steps("get_hit", GET_HIT)
    await steps("get_miss", GET_MISS)
    await steps("get_empty", GET_EMPTY)
    await steps("get_wrongtype", GET_WRONGTYPE)
    await steps("mget_wrongtype_in_the_middle", MGET)

    pipe = r.pipeline(transaction=False)
    for c in PIPELINE:
        call_sync(pipe, c)  # queuing is synchronous in redis.asyncio too
    emit("pipeline", await call_async(pipe, ("execute",)))

    async def worker(i):
        key = f"pool:{i}"
        return [await r.set(key, str(i)), await r.get(key), await r.incr("pool:counter")]

    results = await asyncio.gather(*(worker(i) for i in range(POOL_KEYS)))
    emit("pool", [[x[0], x[1]] for x in results] + [await r.get("pool:counter")])

    await steps("client_name", CLIENT_NAME)
    await steps("forwarded_reads", FORWARDED_READS)
    emit("scan", sorted([k async for k in r.scan_iter(count=1000)]))
    await steps("forwarded_writes", FORWARDED_WRITES)
    emit("ttl_after_expire", ttl_is_long(await r.ttl("plain")))

    emit("write_refused", await call_async(reads, ("set", "refused", "x")))
    emit("reads_port_keeps_working", [await call_async(reads, ("get", "str"))])

    tx = r.pipeline(transaction=True)
    for c in TRANSACTION:
        call_sync(tx, c)
    emit("multi", await call_async(tx, ("execute",)))
    await steps("multi_counter_after", [("get", "tx:counter")])
    await steps("after_multi", AFTER_MULTI)
    emit("blpop", await blpop_woken_async(r, port, kwargs))
    for name, result in await pubsub_steps_async(r, port, kwargs):
        emit(name, result)

    before = await r.client_id()
    await asyncio.sleep(IDLE_PAUSE_S)
    after = await r.client_id()
    emit("idle", {"same_connection": before == after, "get": await r.get("str")})
    await r.aclose()
    await reads.aclose()


def main():
    api, protocol, port, reads_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    kwargs = {} if protocol == "default" else {"protocol": int(protocol)}
    emit("client", {"library": "redis-py", "version": redis.__version__, "api": api})
    if api == "sync":
        run_sync(port, reads_port, kwargs)
    else:
        asyncio.run(run_async(port, reads_port, kwargs))


if __name__ == "__main__":
    main()
