// One run of the client compatibility script with ioredis (tests/client_compat.rs).
//
// Usage: node ioredis.mjs PORT READS_PORT
//
// The same steps as tests/clients/python/compat.py, with ioredis's default settings
// (RESP3 since ioredis 6), against PORT (redis-server, or the proxy with
// PROXY_FORWARD=all) and READS_PORT (the same redis-server, or a proxy with
// PROXY_FORWARD=reads); one JSON line per step. ioredis has no pool of its own: the pool
// step shares its work between a few clients, each with commands in flight at once.
import { createRequire } from 'node:module';
import Redis from 'ioredis';
import {
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
  within,
} from './common.mjs';

const version = createRequire(import.meta.url)('ioredis/package.json').version;
const [port, readsPort] = process.argv.slice(2).map(Number);
const connect = (p) => new Redis({ host: '127.0.0.1', port: p });

const r = connect(port);
const reads = connect(readsPort);
const pool = [connect(port), connect(port), connect(port), connect(port)];

const steps = async (name, calls) => {
  const out = [];
  for (const call of calls) out.push(await settle(call));
  emit(name, out);
};

emit('client', { library: 'ioredis', version, api: 'client' });
await steps('setup', [
  () => r.set('str', 'v1'),
  () => r.set('empty', ''),
  () => r.hset('h', { f1: 'v1', f2: 'v2' }),
  () => r.rpush('l', 'a', 'b', 'c'),
  () => r.sadd('s', 'x', 'y'),
  () => r.set('plain', 'p'),
]);
await steps('get_hit', [() => r.get('str'), () => r.get('str')]);
await steps('get_miss', [() => r.get('missing'), () => r.get('missing')]);
await steps('get_empty', [() => r.get('empty'), () => r.get('empty')]);
await steps('get_wrongtype', [() => r.get('l')]);
const mget = () => r.mget('str', 'l', 'missing', 'empty');
await steps('mget_wrongtype_in_the_middle', [mget, mget]);

// [[error, result], ...]: each command's own outcome.
emit(
  'pipeline',
  await settle(() =>
    r
      .pipeline()
      .set('p1', '1')
      .get('p1')
      .incr('p1')
      .get('p1')
      .get('missing')
      .mget('p1', 'str', 'l')
      .exists('p1', 'str', 'missing')
      .strlen('str')
      .exec(),
  ),
);
// Commands sent without waiting for the previous reply share the connection in order.
emit(
  'auto_pipeline',
  await Promise.all([r.set('ap', 'a'), r.get('ap'), r.append('ap', 'b'), r.get('ap')]),
);

const worker = async (i) => {
  const c = pool[i % pool.length];
  return [await c.set(`pool:${i}`, `${i}`), await c.get(`pool:${i}`), await c.incr('pool:counter')];
};
const results = await Promise.all([...Array(POOL_KEYS).keys()].map(worker));
emit('pool', [...results.map((x) => [x[0], x[1]]), await r.get('pool:counter')]);

await steps('client_name', [() => r.client('SETNAME', 'compat-client'), () => r.client('GETNAME')]);
await steps('forwarded_reads', [
  () => r.exists('str', 'h', 'missing', 'str'),
  () => r.hget('h', 'f1'),
  () => r.hget('h', 'nope'),
  () => r.hgetall('h'),
  () => r.hlen('h'),
  () => r.lrange('l', 0, -1),
  async () => [...(await r.smembers('s'))].sort(), // a set: Redis's order varies by process
  () => r.type('h'),
  () => r.ttl('plain'),
  () => r.ttl('missing'),
  () => r.pttl('missing'),
  () => r.strlen('str'),
  () => r.strlen('missing'),
  () => r.dbsize(),
]);
const keys = [];
let cursor = '0';
do {
  const [next, batch] = await r.scan(cursor, 'COUNT', 1000);
  keys.push(...batch);
  cursor = next;
} while (cursor !== '0');
emit('scan', keys.sort());
await steps('forwarded_writes', [
  () => r.set('str', 'v2'),
  () => r.get('str'),
  () => r.del('empty'),
  () => r.get('empty'),
  () => r.hset('h', 'f3', 'v3'),
  () => r.hget('h', 'f3'),
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
  const other = connect(port);
  await r.del('queue:jobs');
  const push = sleep(200).then(() => other.rpush('queue:jobs', 'job-1'));
  const got = await settle(() => r.blpop('queue:jobs', 5));
  await push;
  const empty = await settle(() => r.blpop('queue:empty', 0.3));
  emit('blpop', [got, empty]);
  await other.quit();
}

// Pub/sub: two subscribers on connections of their own, one to a channel ('message') and
// one to a pattern ('pmessage'), each confirmed (subscribe's promise, the count of
// subscriptions) before a third connection (r) publishes; each subscriber's messages in
// order; PING while subscribed; then they unsubscribe, which leaves subscriber mode, and
// their connection answers PING and GET as any other.
{
  const [byChannel, byPattern] = [connect(port), connect(port)];
  const [toChannel, toPattern] = [receiver(), receiver()];
  byChannel.on('message', (channel, message) => toChannel.push([channel, message]));
  byPattern.on('pmessage', (pattern, channel, message) =>
    toPattern.push([pattern, channel, message]),
  );
  emit('pubsub_subscribed', [
    await within(PUBSUB_WAIT_MS, byChannel.subscribe(PUBSUB_CHANNEL)),
    await within(PUBSUB_WAIT_MS, byPattern.psubscribe(PUBSUB_PATTERN)),
  ]);
  emit('pubsub_published', await publishAll((channel, message) => r.publish(channel, message)));
  emit('pubsub_received', [await receivedUntilEnd(toChannel), await receivedUntilEnd(toPattern)]);
  emit('pubsub_ping_subscribed', await within(PUBSUB_WAIT_MS, byChannel.ping()));
  emit('pubsub_unsubscribed', [
    await within(PUBSUB_WAIT_MS, byChannel.unsubscribe()),
    await within(PUBSUB_WAIT_MS, byPattern.punsubscribe()),
  ]);
  const after = [];
  for (const c of [byChannel, byPattern]) {
    after.push([await settle(() => c.ping()), await settle(() => c.get('str'))]);
  }
  emit('pubsub_after_unsubscribe', after);
  await Promise.all([byChannel.quit(), byPattern.quit()]);
}

const before = await r.client('ID');
await sleep(IDLE_PAUSE_MS);
const after = await r.client('ID');
emit('idle', { same_connection: before === after, get: await r.get('str') });

await Promise.all([r, reads, ...pool].map((c) => c.quit()));
