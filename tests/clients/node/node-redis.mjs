// One run of the client compatibility script with node-redis (tests/client_compat.rs).
//
// Usage: node node-redis.mjs PORT READS_PORT
//
// The same steps as tests/clients/python/compat.py, with node-redis's default settings
// (RESP3), against PORT (redis-server, or the proxy with PROXY_FORWARD=all) and READS_PORT
// (the same redis-server, or a proxy with PROXY_FORWARD=reads); one JSON line per step.
import { createRequire } from 'node:module';
import { createClient, createClientPool } from 'redis';
import {
  CSC_WAIT_MS,
  IDLE_PAUSE_MS,
  POOL_KEYS,
  PUBSUB_CHANNEL,
  PUBSUB_PATTERN,
  PUBSUB_WAIT_MS,
  emit,
  publishAll,
  receivedUntilEnd,
  receiver,
  settle,
  sleep,
  readUntilChanged,
  within,
} from './common.mjs';

const version = createRequire(import.meta.url)('redis/package.json').version;
const [port, readsPort] = process.argv.slice(2).map(Number);
const url = (p) => `redis://127.0.0.1:${p}`;

const r = await createClient({ url: url(port) }).connect();
const reads = await createClient({ url: url(readsPort) }).connect();
const pool = await createClientPool({ url: url(port) }).connect();

const steps = async (name, calls) => {
  const out = [];
  for (const call of calls) out.push(await settle(call));
  emit(name, out);
};

emit('client', { library: 'node-redis', version, api: 'client' });
await steps('setup', [
  () => r.set('str', 'v1'),
  () => r.set('empty', ''),
  () => r.hSet('h', { f1: 'v1', f2: 'v2' }),
  () => r.rPush('l', ['a', 'b', 'c']),
  () => r.sAdd('s', ['x', 'y']),
  () => r.set('plain', 'p'),
]);
await steps('get_hit', [() => r.get('str'), () => r.get('str')]);
await steps('get_miss', [() => r.get('missing'), () => r.get('missing')]);
await steps('get_empty', [() => r.get('empty'), () => r.get('empty')]);
await steps('get_wrongtype', [() => r.get('l')]);
const mget = () => r.mGet(['str', 'l', 'missing', 'empty']);
await steps('mget_wrongtype_in_the_middle', [mget, mget]);

emit(
  'pipeline',
  await settle(() =>
    r
      .multi()
      .set('p1', '1')
      .get('p1')
      .incr('p1')
      .get('p1')
      .get('missing')
      .mGet(['p1', 'str', 'l'])
      .exists(['p1', 'str', 'missing'])
      .strLen('str')
      .execAsPipeline(),
  ),
);
// Commands sent without waiting for the previous reply are pipelined on one connection.
emit(
  'auto_pipeline',
  await Promise.all([r.set('ap', 'a'), r.get('ap'), r.append('ap', 'b'), r.get('ap')]),
);

const worker = async (i) => [await pool.set(`pool:${i}`, `${i}`), await pool.get(`pool:${i}`), await pool.incr('pool:counter')];
const results = await Promise.all([...Array(POOL_KEYS).keys()].map(worker));
emit('pool', [...results.map((x) => [x[0], x[1]]), await pool.get('pool:counter')]);

await steps('client_name', [() => r.clientSetName('compat-client'), () => r.clientGetName()]);
await steps('forwarded_reads', [
  () => r.exists(['str', 'h', 'missing', 'str']),
  () => r.hGet('h', 'f1'),
  () => r.hGet('h', 'nope'),
  () => r.hGetAll('h'),
  () => r.hLen('h'),
  () => r.lRange('l', 0, -1),
  async () => [...(await r.sMembers('s'))].sort(), // a set: Redis's order varies by process
  () => r.type('h'),
  () => r.ttl('plain'),
  () => r.ttl('missing'),
  () => r.pTTL('missing'),
  () => r.strLen('str'),
  () => r.strLen('missing'),
  () => r.dbSize(),
]);
const keys = [];
for await (const batch of r.scanIterator({ COUNT: 1000 })) keys.push(...batch);
emit('scan', keys.sort());
await steps('forwarded_writes', [
  () => r.set('str', 'v2'),
  () => r.get('str'),
  () => r.del('empty'),
  () => r.get('empty'),
  () => r.hSet('h', 'f3', 'v3'),
  () => r.hGet('h', 'f3'),
  () => r.incr('n'),
  () => r.incr('n'),
  () => r.get('n'),
  () => r.expire('plain', 1000),
]);
emit('ttl_after_expire', (await r.ttl('plain')) > 900);

emit('write_refused', await settle(() => reads.set('refused', 'x')));
emit('reads_port_keeps_working', [await settle(() => reads.get('str'))]);

emit('multi', await settle(() => r.multi().incr('tx:counter').get('tx:counter').exec()));
await steps('multi_counter_after', [() => r.get('tx:counter')]);
await steps('after_multi', [() => r.get('str'), () => r.ping()]);

// A blocking pop with a timeout, woken by another client's push 200 ms later, then one
// that times out (a job queue's worker loop).
{
  const other = await createClient({ url: url(port) }).connect();
  await r.del('queue:jobs');
  const push = sleep(200).then(() => other.rPush('queue:jobs', 'job-1'));
  const got = await settle(() => r.blPop('queue:jobs', 5));
  await push;
  const empty = await settle(() => r.blPop('queue:empty', 0.3));
  emit('blpop', [got, empty]);
  await other.close();
}

// Pub/sub: two subscribers on connections of their own (duplicate()), one to a channel and
// one to a pattern, each confirmed (subscribe's promise) before a third connection (r)
// publishes; each subscriber's messages in order; PING while subscribed; then they
// unsubscribe and their connection answers PING and GET as any other.
{
  const byChannel = await r.duplicate().connect();
  const byPattern = await r.duplicate().connect();
  const [toChannel, toPattern] = [receiver(), receiver()];
  emit('pubsub_subscribed', [
    await within(
      PUBSUB_WAIT_MS,
      byChannel.subscribe(PUBSUB_CHANNEL, (message, channel) =>
        toChannel.push([channel, message]),
      ),
    ),
    await within(
      PUBSUB_WAIT_MS,
      byPattern.pSubscribe(PUBSUB_PATTERN, (message, channel) =>
        toPattern.push([channel, message]),
      ),
    ),
  ]);
  emit('pubsub_published', await publishAll((channel, message) => r.publish(channel, message)));
  emit('pubsub_received', [await receivedUntilEnd(toChannel), await receivedUntilEnd(toPattern)]);
  emit('pubsub_ping_subscribed', await within(PUBSUB_WAIT_MS, byChannel.ping()));
  emit('pubsub_unsubscribed', [
    await within(PUBSUB_WAIT_MS, byChannel.unsubscribe(PUBSUB_CHANNEL)),
    await within(PUBSUB_WAIT_MS, byPattern.pUnsubscribe(PUBSUB_PATTERN)),
  ]);
  const after = [];
  for (const c of [byChannel, byPattern]) {
    after.push([await settle(() => c.ping()), await settle(() => c.get('str'))]);
  }
  emit('pubsub_after_unsubscribe', after);
  await Promise.all([byChannel.close(), byPattern.close()]);
}

// Client-side caching: a client with node-redis's clientSideCache (RESP3, CLIENT TRACKING
// ON in its handshake) reads a key twice, the second from its own cache; another
// connection (r) changes the key, and the client reads it until the new value shows (the
// invalidation push is asynchronous through the proxy); then it writes the key itself and
// reads it back. Its cache's counters are printed where they do not depend on timing:
// through the proxy the push may come a few reads later (each a hit on the old value),
// and the proxy may push a key once more than Redis (a miss more).
{
  await r.set('csc:k', 'v1');
  const cached = await settle(() =>
    createClient({
      url: url(port),
      RESP: 3,
      clientSideCache: { ttl: 0, maxEntries: 0 },
    }).connect(),
  );
  const connected = !(cached instanceof Error);
  emit('csc_connect', connected ? 'connected' : cached);
  if (connected) {
    const cache = cached.clientSideCache;
    const get = () => cached.get('csc:k');
    const twice = [await settle(get), await settle(get)];
    const afterTwice = cache.stats();
    // The first read a miss (loaded from the server), the second a hit.
    emit('csc_read_twice', {
      values: twice,
      hitCount: afterTwice.hitCount,
      missCount: afterTwice.missCount,
      loadSuccessCount: afterTwice.loadSuccessCount,
    });
    await r.set('csc:k', 'v2');
    const changed = await within(CSC_WAIT_MS * 2, readUntilChanged(get, 'v1', 'v2'));
    emit('csc_other_connection_writes', changed === 'timeout' ? changed : changed.result);
    emit('csc_own_write', [
      await settle(() => cached.set('csc:k', 'v3')),
      await settle(get),
      await settle(get),
    ]);
    const s = cache.stats();
    const gets = twice.length + (changed.reads ?? 0) + 2;
    emit('csc_stats', {
      every_get_counted: s.hitCount + s.missCount === gets,
      every_miss_loaded: s.missCount === s.loadSuccessCount,
      loadFailureCount: s.loadFailureCount,
      evictionCount: s.evictionCount,
    });
    await cached.close();
  } else {
    const rest = ['csc_read_twice', 'csc_other_connection_writes', 'csc_own_write', 'csc_stats'];
    for (const step of rest) emit(step, 'not connected');
  }
}

const before = await r.clientId();
await sleep(IDLE_PAUSE_MS);
const after = await r.clientId();
emit('idle', { same_connection: before === after, get: await r.get('str') });

await Promise.all([r.close(), reads.close(), pool.close()]);
