import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  status,
  type ServiceDefinition,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  type Client,
} from '@grpc/grpc-js';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeMetrics, SERVED_GRPC_CODES } from '../../src/metrics/node-metrics.js';
import { grpcCodeOf, instrumentGrpcService, parseGrpcPath } from '../../src/metrics/grpc-instrumentation.js';
import { samplesOf } from './fixtures.js';

// A hand-made service (JSON on the wire) so the test needs no .proto of another engineer.
const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString('utf8')) as unknown,
};
function method(path: string, responseStream: boolean) {
  return {
    path,
    requestStream: false,
    responseStream,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  };
}
const definition: ServiceDefinition = {
  Lookup: method('/test.Probe/Lookup', false),
  Stream: method('/test.Probe/Stream', true),
};

interface Req {
  mode: string;
}

const implementation = {
  Lookup(call: ServerUnaryCall<Req, unknown>, callback: sendUnaryData<unknown>): void {
    if (call.request.mode === 'missing') callback({ code: status.NOT_FOUND, details: 'no such thing' });
    else if (call.request.mode === 'throw') throw new Error('bug in handler');
    else callback(null, { ok: true });
  },
  Stream(call: ServerWritableStream<Req, unknown>): void {
    if (call.request.mode === 'hang') return; // never ends: only a client cancel finishes it
    call.write({ n: 1 });
    if (call.request.mode === 'exhausted') {
      call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: 'too busy' });
      return;
    }
    call.write({ n: 2 });
    call.end();
  },
};

type Unary = (req: Req, cb: (err: { code?: number } | null, res?: unknown) => void) => void;
type Streaming = (req: Req) => NodeJS.EventEmitter & { cancel(): void };

async function waitForLine(metrics: NodeMetrics, line: string): Promise<void> {
  // Completion is recorded by the server, which may lag the client by an event-loop turn.
  for (let attempt = 0; attempt < 200; attempt++) {
    if (samplesOf(await metrics.render(), 'scm_grpc_server_handled_total').includes(line)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`never saw ${line} in:\n${samplesOf(await metrics.render(), 'scm_grpc_server_handled_total').join('\n')}`);
}

function handled(method: string, type: string, code: string, count: number): string {
  return `scm_grpc_server_handled_total{grpc_service="test.Probe",grpc_method="${method}",grpc_type="${type}",grpc_code="${code}",scm_node_id="g1"} ${count}`;
}

test('instrumented unary and server-streaming handlers record method, status code and latency', async () => {
  const metrics = new NodeMetrics({ nodeId: 'g1' });
  const server = new Server();
  server.addService(definition, instrumentGrpcService(metrics, definition, implementation));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const ClientCtor = makeGenericClientConstructor(definition, 'Probe');
  const client = new ClientCtor(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as Client & { Lookup: Unary; Stream: Streaming };
  const lookup = (mode: string) =>
    new Promise<{ code: number }>((resolve) => client.Lookup({ mode }, (err) => resolve({ code: err?.code ?? status.OK })));
  const stream = (mode: string) =>
    new Promise<{ code: number; messages: number }>((resolve) => {
      let messages = 0;
      const call = client.Stream({ mode });
      call.on('data', () => messages++);
      call.on('error', (err: { code: number }) => resolve({ code: err.code, messages }));
      call.on('end', () => resolve({ code: status.OK, messages }));
    });
  try {
    assert.deepEqual(await lookup('ok'), { code: status.OK });
    assert.deepEqual(await lookup('ok'), { code: status.OK });
    assert.deepEqual(await lookup('missing'), { code: status.NOT_FOUND });
    assert.deepEqual(await lookup('throw'), { code: status.INTERNAL });
    assert.deepEqual(await stream('ok'), { code: status.OK, messages: 2 });
    const exhausted = await stream('exhausted');
    assert.equal(exhausted.code, status.RESOURCE_EXHAUSTED);

    await waitForLine(metrics, handled('Lookup', 'unary', 'OK', 2));
    await waitForLine(metrics, handled('Lookup', 'unary', 'NOT_FOUND', 1));
    await waitForLine(metrics, handled('Lookup', 'unary', 'INTERNAL', 1));
    await waitForLine(metrics, handled('Stream', 'server_stream', 'OK', 1));
    await waitForLine(metrics, handled('Stream', 'server_stream', 'RESOURCE_EXHAUSTED', 1));

    // A client cancel of a stream that never ends is recorded as CANCELLED.
    const hanging = client.Stream({ mode: 'hang' });
    hanging.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 50));
    hanging.cancel();
    await waitForLine(metrics, handled('Stream', 'server_stream', 'CANCELLED', 1));

    const text = await metrics.render();
    assert.ok(
      text.includes('scm_grpc_server_handling_seconds_count{scm_node_id="g1",grpc_service="test.Probe",grpc_method="Lookup",grpc_type="unary"} 4'),
    );
  } finally {
    client.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  }
});

test('instrumenting a service creates every method x served code at 0, before any call', async () => {
  const metrics = new NodeMetrics({ nodeId: 'g1' });
  instrumentGrpcService(metrics, definition, implementation);
  const lines = samplesOf(await metrics.render(), 'scm_grpc_server_handled_total');
  const expected = [
    ...SERVED_GRPC_CODES.map((code) => handled('Lookup', 'unary', code, 0)),
    ...SERVED_GRPC_CODES.map((code) => handled('Stream', 'server_stream', code, 0)),
  ];
  assert.deepEqual(lines.sort(), expected.sort());
  assert.ok(SERVED_GRPC_CODES.includes('UNAVAILABLE') && SERVED_GRPC_CODES.includes('FAILED_PRECONDITION'));
  // Only the methods given a handler: a partial implementation gets series for its methods only.
  const partial = new NodeMetrics({ nodeId: 'g1' });
  instrumentGrpcService(partial, definition, { Lookup: implementation.Lookup });
  assert.equal(samplesOf(await partial.render(), 'scm_grpc_server_handled_total').length, SERVED_GRPC_CODES.length);
});

test('SERVED_GRPC_CODES covers every status code the server side of our code answers with', () => {
  // The server code (services, typed errors, checkpoint transfer, instrumentation) names codes as
  // `status.X` / `Status.X` or `statusName = 'X'`; a new code there must join the list, or its
  // errors would have no series until the first one. The client port's transport
  // (unary-grpc-server.ts) is not scanned: its own statuses (unknown method, malformed framing,
  // compression) are answered before any handler runs, so no method records them, and the one it
  // answers during a handler, DEADLINE_EXCEEDED, reaches the handler as 'cancelled' and is
  // recorded as CANCELLED; both as with the statuses grpc-js' server answers itself.
  const transport = join('server', 'unary-grpc-server.ts');
  const root = fileURLToPath(new URL('../../src/', import.meta.url));
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  const used = new Set<string>();
  for (const folder of ['server', 'snapshot', 'metrics']) {
    for (const file of files(join(root, folder))) {
      if (file.endsWith(transport)) continue;
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\b[sS]tatus\.([A-Z_]{2,})\b/g)) used.add(m[1] ?? '');
      for (const m of text.matchAll(/statusName\s*=\s*'([A-Z_]+)'/g)) used.add(m[1] ?? '');
    }
  }
  assert.ok(used.has('NOT_FOUND') && used.has('INTERNAL'), `the scan found too little: ${[...used].join(', ')}`);
  const missing = [...used].filter((code) => !(SERVED_GRPC_CODES as readonly string[]).includes(code));
  assert.deepEqual(missing, []);
});

test('instrumentGrpcService rejects handlers that are not methods of the service', () => {
  const metrics = new NodeMetrics({ nodeId: 'g2' });
  assert.throws(
    () => instrumentGrpcService(metrics, definition, { Lookpu: implementation.Lookup }),
    /handler "Lookpu" is not a method of the service \(methods: Lookup, Stream\)/,
  );
});

test('parseGrpcPath and grpcCodeOf', () => {
  assert.deepEqual(parseGrpcPath('/InterSCMProtocolService/download'), { service: 'InterSCMProtocolService', method: 'download' });
  assert.throws(() => parseGrpcPath('download'), /malformed gRPC method path "download"/);
  assert.equal(grpcCodeOf(null), 'OK');
  assert.equal(grpcCodeOf({ code: status.DEADLINE_EXCEEDED }), 'DEADLINE_EXCEEDED');
  assert.equal(grpcCodeOf({ code: 99 }), 'UNKNOWN');
  assert.equal(grpcCodeOf(new Error('plain')), 'UNKNOWN');
});
