#!/usr/bin/env node
// kafkajs round trip against a running broker.
//
//   node kafkajs_roundtrip.js <bootstrap> <topic> <count> <codec: none|gzip|snappy|lz4>
//
// The topic must already exist (nothing is created). Produces <count> messages with
// keys, values and headers using the codec (acks -1), then consumes the topic from the
// beginning with a fresh consumer group and checks that every message came back once,
// byte for byte (key, value, headers, timestamp), in send order within each partition.
// Prints one JSON summary line on stdout; exits 0 on success, 1 on a mismatch or error,
// 2 on the overall 60 s timeout. kafkajs' own logs go to stderr.
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = require('kafkajs')
const LZ4Codec = require('kafkajs-lz4')
const SnappyCodec = require('kafkajs-snappy')

CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

const TOTAL_TIMEOUT_MS = 60000
const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
}

const started = Date.now()
const summary = {
  ok: false,
  client: 'kafkajs',
  bootstrap: null,
  topic: null,
  codec: null,
  count: 0,
  produced: 0,
  consumed: 0,
  partitions: {},
  produce_ms: null,
  consume_ms: null,
  errors: [],
}
let finished = false
let lastCrash = null // the consumer's last crash, for the timeout message

function finish (code) {
  if (finished) return
  finished = true
  summary.ok = code === 0 && summary.errors.length === 0
  summary.elapsed_ms = Date.now() - started
  process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(summary.ok ? 0 : code || 1))
}

function fail (msg) {
  if (summary.errors.length < 20) summary.errors.push(msg)
  else if (summary.errors.length === 20) summary.errors.push('... more errors omitted')
}

function usage (msg) {
  process.stderr.write(`${msg}\nusage: node kafkajs_roundtrip.js <bootstrap> <topic> <count> <none|gzip|snappy|lz4>\n`)
  summary.errors.push(msg)
  finish(1)
}

// Message i: a deterministic key, value and headers. Some keys are null, some values
// are null (tombstones), values vary in size and include binary and compressible data.
function makeMessage (i, baseTs) {
  const key = i % 13 === 5 ? null : Buffer.from(`key-${i % 7}`)
  let value
  if (i % 50 === 49) {
    value = null
  } else if (i % 3 === 0) {
    value = Buffer.from(`value-${i}-` + 'x'.repeat(i % 200))
  } else {
    value = Buffer.alloc(16 + (i * 37) % 1024)
    for (let j = 0; j < value.length; j++) value[j] = (i * 31 + j * 7) & 0xff
  }
  const headers = {
    seq: Buffer.from(String(i)),
    'kafscale-bin': Buffer.from([0, 1, 2, 0xff, i & 0xff]),
  }
  if (i % 4 === 0) headers['empty'] = Buffer.alloc(0)
  return { key, value, headers, timestamp: String(baseTs + i) }
}

function bufEq (a, b) {
  if (a === null || a === undefined) return b === null || b === undefined
  if (b === null || b === undefined) return false
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0
}

function checkMessage (sent, got, where) {
  if (!bufEq(sent.key, got.key)) fail(`${where}: key differs`)
  if (!bufEq(sent.value, got.value)) fail(`${where}: value differs`)
  if (String(got.timestamp) !== sent.timestamp) fail(`${where}: timestamp ${got.timestamp} != ${sent.timestamp}`)
  const gotHeaders = got.headers || {}
  const names = Object.keys(sent.headers)
  if (Object.keys(gotHeaders).length !== names.length) {
    fail(`${where}: header names ${JSON.stringify(Object.keys(gotHeaders))} != ${JSON.stringify(names)}`)
  }
  for (const name of names) {
    if (!bufEq(sent.headers[name], gotHeaders[name])) fail(`${where}: header ${name} differs`)
  }
}

async function main () {
  const [bootstrap, topic, countText, codecName] = process.argv.slice(2)
  if (!bootstrap || !topic || !countText || !codecName) return usage('missing arguments')
  const count = Number.parseInt(countText, 10)
  if (!Number.isInteger(count) || count <= 0) return usage(`bad count: ${countText}`)
  if (!(codecName in CODECS)) return usage(`bad codec: ${codecName}`)
  Object.assign(summary, { bootstrap, topic, codec: codecName, count })

  const kafka = new Kafka({
    clientId: 'kafscale-kafkajs-roundtrip',
    brokers: bootstrap.split(','),
    connectionTimeout: 3000,
    requestTimeout: 30000,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, label, log }) => {
      const { message, ...extra } = log
      process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
    },
  })

  const baseTs = Date.now() - 60000
  const messages = []
  for (let i = 0; i < count; i++) messages.push(makeMessage(i, baseTs))

  // ---- produce: several sends so the topic gets several batches per partition ----
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent: false,
    createPartitioner: Partitioners.DefaultPartitioner, // Java-compatible murmur2
  })
  await producer.connect()
  const t0 = Date.now()
  const chunk = Math.max(1, Math.ceil(count / 10))
  try {
    for (let i = 0; i < count; i += chunk) {
      const results = await producer.send({
        topic,
        acks: -1,
        compression: CODECS[codecName],
        messages: messages.slice(i, i + chunk),
      })
      for (const r of results) {
        if (r.errorCode !== 0) fail(`produce: partition ${r.partition} error ${r.errorCode}`)
      }
      summary.produced += Math.min(chunk, count - i)
    }
  } finally {
    await producer.disconnect()
  }
  summary.produce_ms = Date.now() - t0
  if (summary.errors.length) return finish(1)

  // ---- consume from the beginning with a fresh group ----
  const groupId = `kafscale-kafkajs-${topic}-${process.pid}-${Date.now()}`
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, sessionTimeout: 10000, heartbeatInterval: 1000 })
  const seen = new Map() // seq -> partition
  const lastSeqByPartition = new Map()
  const lastOffsetByPartition = new Map()
  let resolveDone
  const done = new Promise((resolve) => { resolveDone = resolve })
  const t1 = Date.now()

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    lastCrash = `${payload.error && payload.error.name}: ${payload.error && payload.error.message}`
    if (!payload.restart) {
      fail(`consumer crashed: ${lastCrash}`)
      finish(1)
    }
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: true,
    eachMessage: async ({ partition, message }) => {
      const where = `p${partition}@${message.offset}`
      const seqHeader = message.headers && message.headers.seq
      const seq = seqHeader === undefined ? NaN : Number.parseInt(Buffer.from(seqHeader).toString(), 10)
      if (!Number.isInteger(seq) || seq < 0 || seq >= count) {
        fail(`${where}: unexpected message (seq header ${seqHeader})`)
        return
      }
      if (seen.has(seq)) fail(`${where}: seq ${seq} delivered twice`)
      seen.set(seq, partition)
      summary.consumed++
      summary.partitions[partition] = (summary.partitions[partition] || 0) + 1
      const lastSeq = lastSeqByPartition.get(partition)
      if (lastSeq !== undefined && seq <= lastSeq) fail(`${where}: seq ${seq} after ${lastSeq} (order)`)
      lastSeqByPartition.set(partition, seq)
      const offset = BigInt(message.offset)
      const lastOffset = lastOffsetByPartition.get(partition)
      if (lastOffset !== undefined && offset <= lastOffset) fail(`${where}: offset not increasing after ${lastOffset}`)
      lastOffsetByPartition.set(partition, offset)
      checkMessage(messages[seq], message, where)
      if (seen.size === count) resolveDone()
    },
  })
  await done
  // Linger briefly so a duplicate or stray message arriving after the last one is caught.
  await new Promise((resolve) => setTimeout(resolve, 500))
  summary.consume_ms = Date.now() - t1
  await consumer.disconnect()
  if (seen.size !== count) fail(`consumed ${seen.size} distinct messages, expected ${count}`)
  finish(summary.errors.length ? 1 : 0)
}

setTimeout(() => {
  fail(`timeout after ${TOTAL_TIMEOUT_MS} ms (produced ${summary.produced}, consumed ${summary.consumed})` +
       (lastCrash ? `; last consumer crash: ${lastCrash}` : ''))
  finish(2)
}, TOTAL_TIMEOUT_MS)

main().catch((err) => {
  fail(`${err && err.name ? err.name + ': ' : ''}${err && err.message ? err.message : String(err)}`)
  finish(1)
})
