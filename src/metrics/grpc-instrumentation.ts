// Wraps a grpc-js service implementation so every call records its method, status code and latency
// in NodeMetrics. The method set comes from the ServiceDefinition (bounded by the .proto), so one
// call instruments a whole service: `server.addService(def, instrumentGrpcService(metrics, def, impl))`.
//
// How completion is observed, per call shape:
// - unary / client-streaming: the handler's callback carries the error (with `code`) or the reply;
// - server-streaming / bidi: grpc-js sends the status from the stream's `_final` after `end()`
//   ('finish'), and an emitted 'error' becomes the status (its `code`, or UNKNOWN); a client
//   cancel emits 'cancelled'.
// Each call is recorded exactly once, whichever of these happens first.
//
// Instrumenting a service creates its methods' `scm_grpc_server_handled_total` series at 0 for every
// code in SERVED_GRPC_CODES, so an error-ratio alert sees the first failure.
import { status as GrpcStatus } from '@grpc/grpc-js';
import type {
  MethodDefinition,
  ServiceDefinition,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { EventEmitter } from 'node:events';
import { GRPC_CODE_NAMES, type GrpcCallType, type GrpcCodeName, type NodeMetrics } from './node-metrics.js';

type AnyMethodDefinition = MethodDefinition<unknown, unknown>;
type Callback = (error: unknown, value?: unknown, trailer?: unknown, flags?: unknown) => void;

/** Returns a copy of `implementation` whose handlers record requests in `metrics`. */
export function instrumentGrpcService<I extends UntypedServiceImplementation>(
  metrics: NodeMetrics,
  definition: ServiceDefinition,
  implementation: I,
): I {
  const instrumented: UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(implementation)) {
    const method = definition[name] as AnyMethodDefinition | undefined;
    if (method === undefined) {
      throw new Error(
        `handler ${JSON.stringify(name)} is not a method of the service (methods: ${Object.keys(definition).join(', ')})`,
      );
    }
    if (typeof handler !== 'function') throw new Error(`handler ${JSON.stringify(name)} is not a function`);
    instrumented[name] = instrumentHandler(metrics, method, handler);
    metrics.initGrpcMethod({ ...parseGrpcPath(method.path), type: callTypeOf(method) });
  }
  return instrumented as I;
}

/** `/pkg.Service/Method` → service `pkg.Service`, method `Method`. */
export function parseGrpcPath(path: string): { service: string; method: string } {
  const match = /^\/([^/]+)\/([^/]+)$/.exec(path);
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new Error(`malformed gRPC method path ${JSON.stringify(path)}: expected /<service>/<method>`);
  }
  return { service: match[1], method: match[2] };
}

/** Maps a gRPC error (or anything thrown) to a status code name; non-gRPC errors are UNKNOWN. */
export function grpcCodeOf(error: unknown): GrpcCodeName {
  if (error === null || error === undefined) return 'OK';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'number' && Number.isInteger(code)) {
    return GRPC_CODE_NAMES[code] ?? 'UNKNOWN';
  }
  return 'UNKNOWN';
}

function callTypeOf(method: AnyMethodDefinition): GrpcCallType {
  if (method.requestStream) return method.responseStream ? 'bidi_stream' : 'client_stream';
  return method.responseStream ? 'server_stream' : 'unary';
}

function instrumentHandler(
  metrics: NodeMetrics,
  method: AnyMethodDefinition,
  handler: UntypedHandleCall,
): UntypedHandleCall {
  const { service, method: methodName } = parseGrpcPath(method.path);
  const type = callTypeOf(method);

  const startRecording = (): ((code: GrpcCodeName) => void) => {
    const started = process.hrtime.bigint();
    let recorded = false;
    return (code) => {
      if (recorded) return;
      recorded = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.observeGrpcRequest({ service, method: methodName, type, code, seconds });
    };
  };

  if (type === 'unary' || type === 'client_stream') {
    const callbackHandler = handler as (call: EventEmitter, callback: Callback) => void;
    const wrapped = (call: EventEmitter, callback: Callback): void => {
      const record = startRecording();
      call.once('cancelled', () => record('CANCELLED'));
      const recordingCallback: Callback = (error, ...rest) => {
        record(grpcCodeOf(error));
        callback(error, ...rest);
      };
      try {
        callbackHandler(call, recordingCallback);
      } catch (error) {
        // grpc-js does not catch handler exceptions; reply INTERNAL rather than crash the server.
        record('INTERNAL');
        callback({ code: GrpcStatus.INTERNAL, details: `handler threw: ${String(error)}` });
      }
    };
    return wrapped as unknown as UntypedHandleCall;
  }

  const streamHandler = handler as (call: EventEmitter) => void;
  const wrapped = (call: EventEmitter): void => {
    const record = startRecording();
    let failure: GrpcCodeName | undefined;
    call.once('error', (error: unknown) => {
      failure = grpcCodeOf(error) === 'OK' ? 'UNKNOWN' : grpcCodeOf(error);
      record(failure);
    });
    call.once('cancelled', () => record('CANCELLED'));
    call.once('finish', () => record(failure ?? 'OK'));
    try {
      streamHandler(call);
    } catch (error) {
      call.emit('error', { code: GrpcStatus.INTERNAL, details: `handler threw: ${String(error)}` });
    }
  };
  return wrapped as unknown as UntypedHandleCall;
}
