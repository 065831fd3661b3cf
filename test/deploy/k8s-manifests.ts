// Offline checks of the Kubernetes manifests in deploy/kubernetes/ and of its secure variant in
// deploy/kubernetes/secure/, for the tests (there is no cluster here). Three layers, each returning
// a list of problems (empty when all is well), so a test can show that a broken copy of the
// manifests is caught:
//  - schemaProblems: every object against the OpenAPI schema of its kind, Kubernetes v1.33.0, as
//    compiled into the pinned kubernetes-models package (types, formats, enums, required fields);
//  - strictFieldProblems: no field the schema does not declare. OpenAPI v2 schemas allow unknown
//    fields, but the API server's strict field validation (kubectl's default) rejects them: here the
//    objects are type-checked as TypeScript literals of the same package's declared types, so a
//    misspelt field is an excess-property error;
//  - crossReferenceProblems: what no schema can see. Names are ones the API server accepts (env
//    variables, ConfigMap keys, port names); selectors match the pod labels; mounts match claims;
//    named ports and probes match what each pod's configuration makes the node listen on; every
//    OZONE-SITE.XML_ key is one the node knows and uses (the node's own config key table); each
//    pod's environment, computed as the kubelet does, loads into the config of that very pod; and
//    with TLS, every certificate and key file it names is an item of a read-only Secret volume (the
//    pod's own certificate for each pod), and probes, the preStop hook and the Prometheus
//    annotations use HTTPS on the HTTPS port.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import ts from 'typescript';
import { ConfigMap, type IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service, type IService } from 'kubernetes-models/v1/Service';
import { StatefulSet, type IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import { loadConfig, requireSelf, type ScmConfig } from '../../src/server/config.js';
import { findKeySpec } from '../../src/server/config-keys.js';
import { dockerfileInstructions, ENV_PREFIX, ROOT, yamlDocuments } from './deploy-files.js';

export const K8S_DIR = join(ROOT, 'deploy/kubernetes');
/** The secure variant: a complete set of manifests, applied instead of K8S_DIR's. */
export const K8S_SECURE_DIR = join(K8S_DIR, 'secure');
/** The Kubernetes version whose OpenAPI schemas kubernetes-models 4.5.1 carries (its changelog). */
export const KUBERNETES_SCHEMA_VERSION = 'v1.33.0';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface Manifest {
  /** File name inside the manifest directory. */
  readonly file: string;
  readonly object: K8sObject;
}

/** Every document of every .yaml/.yml/.json file directly in `dir`: what `kubectl apply -f dir` applies. */
export function loadManifests(dir = K8S_DIR): Manifest[] {
  const manifests: Manifest[] = [];
  const files = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && /\.(ya?ml|json)$/.test(e.name))
    .map((e) => e.name)
    .sort();
  for (const file of files) {
    for (const doc of yamlDocuments(readFileSync(join(dir, file), 'utf8'))) {
      manifests.push({ file, object: doc as K8sObject });
    }
  }
  return manifests;
}

function label(m: Manifest): string {
  return `${m.file}: ${String(m.object.kind)}/${String(m.object.metadata?.name)}`;
}

interface KindSchema {
  /** The package's model, whose validate() runs the compiled OpenAPI schema. */
  readonly model: (data: K8sObject) => { validate(): void };
  /** Module and interface name of the declared type, for the strict-field type check. */
  readonly module: string;
  readonly type: string;
}

/** The kinds the manifests may use. A new kind must be added here, so it is validated too. */
const SCHEMAS: Readonly<Record<string, KindSchema>> = {
  'v1/ConfigMap': { model: (d) => new ConfigMap(d as unknown as IConfigMap), module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  'v1/Service': { model: (d) => new Service(d as unknown as IService), module: 'kubernetes-models/v1/Service', type: 'IService' },
  'apps/v1/StatefulSet': { model: (d) => new StatefulSet(d as unknown as IStatefulSet), module: 'kubernetes-models/apps/v1/StatefulSet', type: 'IStatefulSet' },
  'policy/v1/PodDisruptionBudget': {
    model: (d) => new PodDisruptionBudget(d as unknown as IPodDisruptionBudget),
    module: 'kubernetes-models/policy/v1/PodDisruptionBudget',
    type: 'IPodDisruptionBudget',
  },
};

function schemaOf(m: Manifest): KindSchema | undefined {
  return SCHEMAS[`${String(m.object.apiVersion)}/${String(m.object.kind)}`];
}

export function schemaProblems(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const m of manifests) {
    if (typeof m.object !== 'object' || m.object === null || Array.isArray(m.object)) {
      problems.push(`${m.file}: a document that is not an object`);
      continue;
    }
    const schema = schemaOf(m);
    if (schema === undefined) {
      problems.push(`${label(m)}: no schema for apiVersion ${String(m.object.apiVersion)} kind ${String(m.object.kind)}`);
      continue;
    }
    if (typeof m.object.metadata?.name !== 'string' || m.object.metadata.name === '') problems.push(`${label(m)}: metadata.name is missing`);
    try {
      schema.model(structuredClone(m.object)).validate();
    } catch (err) {
      problems.push(`${label(m)}: ${(err as Error).message}`);
    }
  }
  return problems;
}

/**
 * Type-checks each object as a TypeScript literal of its kind's declared type, in memory. Only
 * objects of known kinds are checked (schemaProblems reports the others).
 */
export function strictFieldProblems(manifests: readonly Manifest[]): string[] {
  const checked = manifests.flatMap((m) => {
    const schema = schemaOf(m);
    return schema === undefined ? [] : [{ manifest: m, schema }];
  });
  const virtualFile = join(ROOT, 'test/deploy/__k8s_manifest_types__.ts');
  const lines: string[] = [];
  const imports = [...new Set(checked.map((c) => c.schema))];
  imports.forEach((s, i) => lines.push(`import type { ${s.type} as T${i} } from '${s.module}';`));
  const starts: { line: number; manifest: Manifest }[] = [];
  checked.forEach(({ manifest, schema }, i) => {
    starts.push({ line: lines.length, manifest });
    lines.push(...`export const o${i}: T${imports.indexOf(schema)} = ${JSON.stringify(manifest.object, null, 2)};`.split('\n'));
  });
  const source = lines.join('\n');

  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, languageVersion, ...rest) =>
    name === virtualFile ? ts.createSourceFile(name, source, languageVersion) : getSourceFile.call(host, name, languageVersion, ...rest);
  host.fileExists = (name) => name === virtualFile || fileExists.call(host, name);
  host.readFile = (name) => (name === virtualFile ? source : readFile.call(host, name));
  const program = ts.createProgram([virtualFile], options, host);
  const sourceFile = program.getSourceFile(virtualFile);
  if (sourceFile === undefined) return ['internal: the generated type check module was not loaded'];
  const diagnostics = [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)];
  return diagnostics.map((d) => {
    const line = d.start === undefined ? 0 : sourceFile.getLineAndCharacterOfPosition(d.start).line;
    const owner = starts.filter((s) => s.line <= line).at(-1);
    const where = owner === undefined ? 'generated imports' : label(owner.manifest);
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

// ---- cross references ----

/** The variables a StatefulSet's container may set besides OZONE-SITE.XML_ ones, and why. */
export const OTHER_ENV = new Set([
  'POD_NAME', // the pod's name, which is its node id
  'POD_NAMESPACE', // for the peers' DNS names
  'SCM_CLIENT_ADDRESSES', // every SCM's client address, for `scm admin` in the start script and the preStop hook
  'NODE_OPTIONS', // the V8 heap limit
  'SCM_LOG_LEVEL', // the node's log level (as docker-compose.yml)
  'SCM_HTTPS_SERVERNAME', // with HTTPS: the pod's DNS name, which the preStop hook checks its certificate for
]);

/** Kubernetes' $(VAR) expansion of env values, command and args: `$$` is a literal `$`, unknown names stay as written. */
export function expandKubernetesVars(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== '$' || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += '$(';
        i++;
      } else {
        const name = input.slice(i + 2, close);
        out += lookup(name) ?? `$(${name})`;
        i = close;
      }
    } else {
      out += `$${next}`;
      i++;
    }
  }
  return out;
}

function configMapsByName(manifests: readonly Manifest[]): Map<string, IConfigMap> {
  return new Map(manifests.filter((m) => m.object.kind === 'ConfigMap').map((m) => [m.object.metadata.name, m.object as unknown as IConfigMap]));
}

/**
 * The environment the kubelet gives container `container` of pod `<set>-<ordinal>` in `namespace`:
 * envFrom first, then env in order, each value expanded against what precedes it.
 */
export function podEnvironment(
  manifests: readonly Manifest[],
  set: IStatefulSet,
  container: IContainer,
  ordinal: number,
  namespace: string,
): { env: Record<string, string>; problems: string[] } {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  const configMaps = configMapsByName(manifests);
  const podName = `${set.metadata?.name ?? '?'}-${ordinal}`;
  for (const source of container.envFrom ?? []) {
    const name = source.configMapRef?.name;
    const data = name === undefined ? undefined : configMaps.get(name)?.data;
    if (name === undefined || data === undefined) {
      problems.push(`container ${container.name}: envFrom names ${name === undefined ? 'no ConfigMap' : `ConfigMap ${name}, which the manifests do not define`}`);
      continue;
    }
    for (const [k, v] of Object.entries(data)) env[`${source.prefix ?? ''}${k}`] = v;
  }
  for (const variable of container.env ?? []) {
    if (variable.valueFrom === undefined) {
      env[variable.name] = expandKubernetesVars(variable.value ?? '', (n) => env[n]);
      continue;
    }
    const field = variable.valueFrom.fieldRef?.fieldPath;
    const keyRef = variable.valueFrom.configMapKeyRef;
    if (field === 'metadata.name') env[variable.name] = podName;
    else if (field === 'metadata.namespace') env[variable.name] = namespace;
    else if (keyRef !== undefined) {
      const value = configMaps.get(keyRef.name ?? '')?.data?.[keyRef.key];
      if (value === undefined) problems.push(`env ${variable.name}: ConfigMap ${keyRef.name ?? '?'} has no key ${keyRef.key}`);
      else env[variable.name] = value;
    } else problems.push(`env ${variable.name}: a valueFrom this check does not know`);
  }
  for (const [name, value] of Object.entries(env)) {
    const unresolved = /\$\(([^)]*)\)/.exec(value.replace(/\$\$/g, ''));
    if (unresolved !== null) problems.push(`env ${name}: $(${unresolved[1] ?? ''}) is not defined before it`);
  }
  return { env, problems };
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

const BINARY_SUFFIXES: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL_SUFFIXES: Record<string, number> = { m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes quantity ("500m", "2", "512Mi", "1G") as a number of base units; NaN when malformed. */
export function parseQuantity(value: string | number | undefined): number {
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)([KMGT]i|[mkMGT]?)$/.exec(value ?? '');
  if (match === null) return NaN;
  const scale = BINARY_SUFFIXES[match[2] ?? ''] ?? DECIMAL_SUFFIXES[match[2] ?? ''] ?? NaN;
  return Number(match[1]) * scale;
}

/** Where the node serves /healthz, /readyz, /status and /prom: HTTP, or HTTPS with ozone.http.policy HTTPS_ONLY. */
interface WebEndpoint {
  readonly scheme: 'HTTP' | 'HTTPS';
  readonly portName: 'http' | 'https';
  readonly port: number;
}

function probeProblems(what: string, probe: IProbe | undefined, path: string, web: WebEndpoint, ports: Map<string, number>): string[] {
  const get = probe?.httpGet;
  if (get === undefined) return [`${what}: expected an httpGet probe on ${path}`];
  const problems: string[] = [];
  if (get.path !== path) problems.push(`${what}: probes ${String(get.path)}, expected ${path}`);
  const probed = typeof get.port === 'number' ? get.port : ports.get(get.port);
  if (probed !== web.port) problems.push(`${what}: probes port ${String(get.port)}, but the node serves ${web.scheme} on ${web.port}`);
  if ((get.scheme ?? 'HTTP') !== web.scheme) problems.push(`${what}: probes with scheme ${get.scheme ?? 'HTTP'}, but the node serves ${web.scheme} on ${web.port}`);
  return problems;
}

/** The Secret volume item a file path is, through a mount of the container: undefined when it is none. */
function secretItemOf(path: string, mounts: readonly IVolumeMount[], volumes: readonly IVolume[]): { volume: IVolume; mount: IVolumeMount; key: string } | undefined {
  for (const mount of mounts) {
    const dir = mount.mountPath.replace(/\/$/, '');
    if (posix.dirname(path) !== dir) continue;
    const volume = volumes.find((v) => v.name === mount.name);
    const item = volume?.secret?.items?.find((i) => i.path === posix.basename(path));
    if (volume !== undefined && item !== undefined) return { volume, mount, key: item.key };
  }
  return undefined;
}

/** The uid and gid the Dockerfile's runtime user gets (`useradd --uid N --gid NAME`, `groupadd --gid N`). */
function imageUser(): { uid: number; gid: number } {
  const runs = dockerfileInstructions()
    .filter(([k]) => k === 'RUN')
    .map(([, v]) => v)
    .join(' ');
  return { uid: Number(/useradd\b[^&]*--uid (\d+)/.exec(runs)?.[1]), gid: Number(/groupadd\b[^&]*--gid (\d+)/.exec(runs)?.[1]) };
}

/** The Dockerfile's runtime WORKDIR and whether it copies bin/ there, so /opt/scm/bin/… exists in the image. */
function imageBinDir(): string | undefined {
  const instructions = dockerfileInstructions();
  const lastFrom = instructions.map(([k]) => k).lastIndexOf('FROM');
  const runtime = instructions.slice(lastFrom);
  const workdir = runtime.filter(([k]) => k === 'WORKDIR').at(-1)?.[1];
  const copiesBin = runtime.some(([k, v]) => k === 'COPY' && /^bin \.\/bin$/.test(v));
  return workdir !== undefined && copiesBin ? posix.join(workdir, 'bin') : undefined;
}

const NAMESPACE = 'scm-test';

function webEndpoint(config: ScmConfig): WebEndpoint {
  const self = requireSelf(config);
  return config.security.httpPolicy === 'HTTPS_ONLY' ? { scheme: 'HTTPS', portName: 'https', port: self.httpsPort } : { scheme: 'HTTP', portName: 'http', port: self.httpPort };
}

/**
 * With TLS on, for pod `pod`: every file its configuration names (the CA, its certificate and key,
 * the client identity the pod's `scm admin` calls present) is an item of a Secret volume mounted
 * read-only, readable by the image's group and no one else; its own certificate and key are the
 * Secret's `<pod>.crt` and `<pod>.key`; and the preStop hook's server name is its own address.
 * With TLS off, no Secret is mounted for nothing.
 */
function tlsProblems(
  where: string,
  pod: string,
  config: ScmConfig,
  env: Record<string, string>,
  mounts: readonly IVolumeMount[],
  volumes: readonly IVolume[],
): string[] {
  const problems: string[] = [];
  const add = (text: string): void => void problems.push(`${where}: pod ${pod}: ${text}`);
  const security = config.security;
  const secretVolumes = volumes.filter((v) => v.secret !== undefined);
  if (!security.enabled) {
    for (const v of secretVolumes) add(`Secret volume ${v.name} is mounted, but the node runs in plaintext (ozone.security.enabled, hdds.grpc.tls.enabled)`);
    if (env['SCM_HTTPS_SERVERNAME'] !== undefined) add('SCM_HTTPS_SERVERNAME is set, but the node serves no HTTPS');
    return problems;
  }
  const tls = security.tls;
  if (tls === null) return [...problems, `${where}: pod ${pod}: TLS is on but the node has no certificate files`];
  if (security.clientTls === null) add('no client identity (ozone.scm.client.x509.*): the start script and the preStop hook call `scm admin`, which must present one');
  else if (security.clientTls.caFile !== tls.caFile) add(`the client identity trusts ${security.clientTls.caFile}, the node ${tls.caFile}`);
  const files: [string, string][] = [
    ['hdds.x509.rootca.certificate.file', tls.caFile],
    ['ozone.scm.x509.certificate.file', tls.certFile],
    ['ozone.scm.x509.private.key.file', tls.keyFile],
    ...(security.clientTls === null
      ? []
      : ([
          ['ozone.scm.client.x509.certificate.file', security.clientTls.certFile],
          ['ozone.scm.client.x509.private.key.file', security.clientTls.keyFile],
        ] as [string, string][])),
  ];
  const keys = new Map<string, string>();
  for (const [key, file] of files) {
    const item = secretItemOf(file, mounts, volumes);
    if (item === undefined) {
      add(`${key} is ${file}, which is no item of a Secret volume mounted in the container`);
      continue;
    }
    keys.set(key, item.key);
    if (item.mount.readOnly !== true) add(`the Secret volume ${item.volume.name} must be mounted readOnly`);
    // Owned by root, readable through the image's group (fsGroup): group read, nothing for others.
    const items = item.volume.secret?.items ?? [];
    const mode = items.find((i) => i.key === item.key)?.mode ?? item.volume.secret?.defaultMode ?? 0o644;
    if ((mode & 0o040) === 0 || (mode & 0o007) !== 0) add(`${file} has mode 0${mode.toString(8)}: it must be readable by the group (fsGroup) and by no one else`);
  }
  const own = (suffix: string, key: string): void => {
    const got = keys.get(key);
    if (got !== undefined && got !== `${pod}.${suffix}`) add(`${key} is the Secret's ${got}, not this pod's own ${pod}.${suffix}`);
  };
  own('crt', 'ozone.scm.x509.certificate.file');
  own('key', 'ozone.scm.x509.private.key.file');
  if (security.httpPolicy === 'HTTPS_ONLY') {
    const self = requireSelf(config);
    if (env['SCM_HTTPS_SERVERNAME'] !== self.host) {
      add(`SCM_HTTPS_SERVERNAME is ${String(env['SCM_HTTPS_SERVERNAME'])}, but the pod's certificate names its address ${self.host} (the preStop hook checks it for that name)`);
    }
  }
  if (security.administrators.length === 0) add('ozone.administrators is empty: nobody may transfer leadership, the preStop hook included');
  return [...new Set(problems)];
}

/** Everything about one StatefulSet of SCMs that must agree with the other objects and the node. */
function statefulSetProblems(manifests: readonly Manifest[], m: Manifest): string[] {
  const set = m.object as unknown as IStatefulSet;
  const where = label(m);
  const problems: string[] = [];
  const add = (text: string): void => void problems.push(`${where}: ${text}`);
  const spec = set.spec;
  const podSpec = spec?.template.spec;
  if (spec === undefined || podSpec === undefined) return [`${where}: no spec or pod template`];
  const name = set.metadata?.name ?? '';
  const podLabels = spec.template.metadata?.labels;
  const replicas = spec.replicas ?? 1;

  // Selectors: the set's own, the Services', the PodDisruptionBudget's, the anti-affinity's.
  if (spec.selector.matchExpressions !== undefined) add('selector.matchExpressions is not checked here; use matchLabels');
  if (!matches(spec.selector.matchLabels, podLabels)) add('spec.selector does not match the pod template labels');
  const services = manifests.filter((s) => s.object.kind === 'Service');
  const headless = services.find((s) => s.object.metadata.name === spec.serviceName);
  if (headless === undefined) add(`serviceName ${spec.serviceName ?? '(none)'} names no Service in the manifests`);
  else {
    const hs = (headless.object as unknown as IService).spec;
    if (hs?.clusterIP !== 'None') add(`Service ${spec.serviceName ?? ''} must be headless (clusterIP: None) for per-pod DNS names`);
    if (hs?.publishNotReadyAddresses !== true) {
      add(`Service ${spec.serviceName ?? ''} must publish not-ready pods: the nodes must reach each other to elect a leader before any is ready`);
    }
  }
  const container = podSpec.containers.find((c) => c.name === 'scm') ?? podSpec.containers[0];
  if (container === undefined) return [...problems, `${where}: no container`];
  const containerPorts = new Map((container.ports ?? []).filter((p) => p.name !== undefined).map((p) => [p.name ?? '', p.containerPort]));
  for (const s of services) {
    const service = (s.object as unknown as IService).spec;
    if (!matches(service?.selector, podLabels)) {
      problems.push(`${label(s)}: selector ${JSON.stringify(service?.selector ?? {})} matches no pod of StatefulSet ${name} (labels ${JSON.stringify(podLabels ?? {})})`);
      continue;
    }
    for (const port of service?.ports ?? []) {
      const target = port.targetPort ?? port.port;
      const known = typeof target === 'number' ? [...containerPorts.values()].includes(target) : containerPorts.has(target);
      if (!known) problems.push(`${label(s)}: port ${port.name ?? port.port} targets ${String(target)}, which container ${container.name} does not declare`);
    }
  }
  const budgets = manifests.filter((b) => b.object.kind === 'PodDisruptionBudget');
  const budget = budgets.find((b) => matches((b.object as unknown as IPodDisruptionBudget).spec?.selector?.matchLabels, podLabels));
  if (budget === undefined) add('no PodDisruptionBudget selects its pods');
  else {
    const pdb = (budget.object as unknown as IPodDisruptionBudget).spec;
    const quorum = Math.floor(replicas / 2) + 1;
    if (typeof pdb?.maxUnavailable !== 'number' || pdb.minAvailable !== undefined) {
      problems.push(`${label(budget)}: expected an integer maxUnavailable (and no minAvailable)`);
    } else if (pdb.maxUnavailable < 1 || replicas - pdb.maxUnavailable < quorum) {
      problems.push(`${label(budget)}: maxUnavailable ${pdb.maxUnavailable} of ${replicas} voters leaves fewer than a quorum of ${quorum} (or blocks every drain)`);
    }
  }
  for (const b of budgets.filter((x) => x !== budget)) problems.push(`${label(b)}: selects no pod of StatefulSet ${name}`);
  const antiAffinity = podSpec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  if (!antiAffinity.some((t) => t.topologyKey === 'kubernetes.io/hostname' && matches(t.labelSelector?.matchLabels, podLabels))) {
    add('no required pod anti-affinity on kubernetes.io/hostname that selects its own pods');
  }
  if (spec.podManagementPolicy !== 'Parallel') add('podManagementPolicy must be Parallel: OrderedReady deadlocks a restart of the whole quorum');

  // Volumes: every mount names a claim template or a pod volume; every claim template is mounted.
  const claims = new Set((spec.volumeClaimTemplates ?? []).map((c) => c.metadata?.name ?? ''));
  const volumes = new Set((podSpec.volumes ?? []).map((v) => v.name));
  const mounts = container.volumeMounts ?? [];
  for (const mount of mounts) {
    if (!claims.has(mount.name) && !volumes.has(mount.name)) add(`volumeMount ${mount.name} (${mount.mountPath}) names no volumeClaimTemplate or volume`);
  }
  for (const claim of claims) if (!mounts.some((v) => v.name === claim)) add(`volumeClaimTemplate ${claim} is not mounted`);
  const claimMounts = mounts.filter((v) => claims.has(v.name)).map((v) => v.mountPath);
  const onClaim = (dir: string): boolean => claimMounts.some((p) => dir === p || dir.startsWith(`${p.replace(/\/$/, '')}/`));

  // The environment: known, used keys only, and each pod's loads into that pod's own config.
  const configMaps = configMapsByName(manifests);
  const envNames = [
    ...(container.envFrom ?? []).flatMap((f) => Object.keys(configMaps.get(f.configMapRef?.name ?? '')?.data ?? {}).map((k) => `${f.prefix ?? ''}${k}`)),
    ...(container.env ?? []).map((e) => e.name),
  ];
  for (const variable of envNames) {
    if (!variable.startsWith(ENV_PREFIX)) {
      if (!OTHER_ENV.has(variable)) add(`sets ${variable}, which is neither an OZONE-SITE.XML_ variable nor one of ${[...OTHER_ENV].join(', ')}`);
      continue;
    }
    const key = variable.slice(ENV_PREFIX.length);
    const keySpec = findKeySpec(key);
    if (keySpec === undefined) add(`${key} is not a configuration key the node accepts`);
    else if (!keySpec.used) add(`${key} is accepted but has no effect on this node`);
  }
  const podNames = Array.from({ length: replicas }, (_, i) => `${name}-${i}`);
  let first: ScmConfig | undefined;
  for (let ordinal = 0; ordinal < replicas; ordinal++) {
    const pod = `${name}-${ordinal}`;
    const { env, problems: envProblems } = podEnvironment(manifests, set, container, ordinal, NAMESPACE);
    for (const p of envProblems) add(`pod ${pod}: ${p}`);
    let config: ScmConfig;
    try {
      config = loadConfig({ env });
      requireSelf(config);
    } catch (err) {
      add(`pod ${pod}: its environment does not load: ${(err as Error).message}`);
      continue;
    }
    first ??= config;
    const self = requireSelf(config);
    if (config.nodeId !== pod) add(`pod ${pod}: ozone.scm.node.id is ${String(config.nodeId)}, not the pod's name`);
    const ids = config.peers.map((p) => p.nodeId);
    if (ids.join(',') !== podNames.join(',')) add(`pod ${pod}: the SCM nodes are ${ids.join(',')}, but the pods are ${podNames.join(',')} (replicas ${replicas})`);
    for (const peer of config.peers) {
      const dns = `${peer.nodeId}.${spec.serviceName ?? '?'}.${NAMESPACE}.svc`;
      if (peer.host !== dns) add(`pod ${pod}: node ${peer.nodeId} is addressed as ${peer.host}, not by its pod DNS name ${dns}`);
    }
    if (config.primordialNodeId === null) add('ozone.scm.primordial.node.id is not set: no pod would initialise the cluster');
    const web = webEndpoint(config);
    const wanted: [string, number][] = [
      ['client', self.clientPort],
      ['ratis', self.ratisPort],
      ['grpc', self.grpcPort],
      [web.portName, web.port],
    ];
    for (const [portName, port] of wanted) {
      if (containerPorts.get(portName) !== port) add(`pod ${pod}: container port ${portName} is ${String(containerPorts.get(portName))}, the node listens on ${port}`);
    }
    if (containerPorts.size !== wanted.length) add(`container declares ports ${[...containerPorts.keys()].join(', ')}; expected exactly ${wanted.map(([n]) => n).join(', ')}`);
    if ((web.scheme === 'HTTP' ? self.httpHost : self.httpsHost) !== '0.0.0.0' || config.clientBindHost !== '0.0.0.0') {
      add(`pod ${pod}: the ${web.scheme} and client servers must bind 0.0.0.0 for probes, scrapes and peers`);
    }
    if (config.security.httpPolicy === 'HTTP_AND_HTTPS') add(`pod ${pod}: ozone.http.policy HTTP_AND_HTTPS serves /status and metrics in plaintext beside HTTPS; use HTTPS_ONLY`);
    problems.push(...tlsProblems(where, pod, config, env, mounts, podSpec.volumes ?? []));
    if (!onClaim(config.dbDir)) add(`pod ${pod}: ozone.scm.db.dirs ${config.dbDir} is not on a PersistentVolumeClaim (mounted: ${claimMounts.join(', ') || 'none'})`);
    if (!onClaim(config.ratisDir)) add(`pod ${pod}: the Raft log dir ${config.ratisDir} is not on a PersistentVolumeClaim (mounted: ${claimMounts.join(', ') || 'none'})`);
    const addresses = config.peers.map((p) => p.clientAddress).join(',');
    if (env['SCM_CLIENT_ADDRESSES'] !== addresses) add(`pod ${pod}: SCM_CLIENT_ADDRESSES is ${String(env['SCM_CLIENT_ADDRESSES'])}, the configured client addresses are ${addresses}`);
  }
  if (first === undefined) return problems;
  const web = webEndpoint(first);

  // Every pod volume is mounted (a Secret volume nobody reads is a Secret the pods wait for in vain).
  for (const volume of volumes) if (!mounts.some((v) => v.name === volume)) add(`volume ${volume} is not mounted`);

  // Probes, the preStop hook and the grace period for it.
  problems.push(...probeProblems(`${where}: readinessProbe`, container.readinessProbe, '/readyz', web, containerPorts));
  problems.push(...probeProblems(`${where}: livenessProbe`, container.livenessProbe, '/healthz', web, containerPorts));
  problems.push(...probeProblems(`${where}: startupProbe`, container.startupProbe, '/healthz', web, containerPorts));
  const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
  const binDir = imageBinDir();
  const script = preStop[1] ?? '';
  if (preStop[0] !== 'node' || binDir === undefined || posix.dirname(script) !== binDir || !existsSync(join(ROOT, 'bin', posix.basename(script)))) {
    add(`preStop ${JSON.stringify(preStop)} must run a script of bin/, which the image copies to ${binDir ?? '(nowhere)'}`);
  }
  const option = (flag: string): string | undefined => {
    const i = preStop.indexOf(flag);
    return i < 0 ? undefined : preStop[i + 1];
  };
  if (web.scheme === 'HTTP') {
    if (option('--http') !== `127.0.0.1:${web.port}` || option('--https') !== undefined) add(`preStop --http is ${String(option('--http'))}, the node serves HTTP on 127.0.0.1:${web.port}`);
  } else {
    if (option('--https') !== `127.0.0.1:${web.port}` || option('--http') !== undefined) add(`preStop --https is ${String(option('--https'))}, the node serves HTTPS on 127.0.0.1:${web.port}`);
    const caFile = first.security.tls?.caFile;
    if (option('--ca') !== caFile) add(`preStop --ca is ${String(option('--ca'))}, the cluster CA is ${String(caFile)} (${'hdds.x509.rootca.certificate.file'})`);
    if (option('--servername') !== undefined) add('preStop --servername is the same for every pod; leave it to SCM_HTTPS_SERVERNAME, set per pod');
  }
  const transferSeconds = Number(option('--timeout') ?? 20);
  // /status (2 s) and the transfer, then SIGTERM: at least 30 s for the node's orderly stop.
  const needed = 2 + transferSeconds + 30;
  if ((podSpec.terminationGracePeriodSeconds ?? 30) < needed) {
    add(`terminationGracePeriodSeconds ${podSpec.terminationGracePeriodSeconds ?? 30} leaves no room for the preStop transfer (${transferSeconds} s) and the stop: at least ${needed}`);
  }

  // Security: the image's non-root user, no privilege escalation, no capabilities.
  const user = imageUser();
  const podSecurity = podSpec.securityContext;
  if (podSecurity?.runAsNonRoot !== true || podSecurity.runAsUser !== user.uid || podSecurity.fsGroup !== user.gid) {
    add(`pod securityContext must run as the image's user ${user.uid} (runAsNonRoot) with fsGroup ${user.gid}, so the claim is writable`);
  }
  const security = container.securityContext;
  if (security?.allowPrivilegeEscalation !== false || !(security.capabilities?.drop ?? []).includes('ALL') || security.readOnlyRootFilesystem !== true) {
    add('container securityContext must forbid privilege escalation, drop ALL capabilities and mount the root filesystem read-only');
  }

  // Prometheus annotations point at the metrics endpoint, with its scheme.
  const annotations = spec.template.metadata?.annotations ?? {};
  const scheme = annotations['prometheus.io/scheme'] ?? 'http';
  if (
    annotations['prometheus.io/scrape'] !== 'true' ||
    annotations['prometheus.io/path'] !== '/prom' ||
    annotations['prometheus.io/port'] !== String(web.port) ||
    scheme !== web.scheme.toLowerCase()
  ) {
    add(`pod annotations must say prometheus.io/scrape "true", path /prom, port ${web.port}, scheme ${web.scheme.toLowerCase()}; got ${JSON.stringify(annotations)}`);
  }

  // Resources: requests within limits, and a V8 heap cap that fits the memory limit.
  const requests = container.resources?.requests ?? {};
  const limits = container.resources?.limits ?? {};
  for (const resource of ['cpu', 'memory']) {
    const request = parseQuantity(requests[resource]);
    const limit = parseQuantity(limits[resource]);
    if (!(request > 0) || !(limit > 0)) add(`${resource}: requests and limits must both be set`);
    else if (request > limit) add(`${resource}: request ${String(requests[resource])} exceeds limit ${String(limits[resource])}`);
  }
  const nodeOptions = (container.env ?? []).find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
  const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(nodeOptions)?.[1]);
  const limitMiB = parseQuantity(limits['memory']) / 2 ** 20;
  // Beyond the old generation: young generation, code, LevelDB caches, gRPC buffers, checkpoint streams.
  if (!(heapMiB > 0) || heapMiB > limitMiB - 256) add(`NODE_OPTIONS must cap the V8 heap (--max-old-space-size) at least 256 MiB below the memory limit (${limitMiB} MiB); got ${JSON.stringify(nodeOptions)}`);
  return problems;
}

// Names the API server validates beyond the OpenAPI schemas (apimachinery's validation).
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const CONFIG_MAP_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
const PORT_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(?:-[a-z0-9]+)*$/;

function nameProblems(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const m of manifests) {
    if (m.object.kind === 'ConfigMap') {
      for (const key of Object.keys((m.object as unknown as IConfigMap).data ?? {})) {
        if (!CONFIG_MAP_KEY.test(key)) problems.push(`${label(m)}: ${key} is not a valid ConfigMap key`);
        // The kubelet skips envFrom keys that are not valid variable names (the pods load this one with envFrom).
        else if (!ENV_NAME.test(key)) problems.push(`${label(m)}: ${key} is not a valid environment variable name, so envFrom would skip it`);
      }
    }
    if (m.object.kind === 'StatefulSet') {
      for (const c of (m.object as unknown as IStatefulSet).spec?.template.spec?.containers ?? []) {
        for (const e of c.env ?? []) if (!ENV_NAME.test(e.name)) problems.push(`${label(m)}: ${e.name} is not a valid environment variable name`);
        for (const p of c.ports ?? []) if (p.name !== undefined && !PORT_NAME.test(p.name)) problems.push(`${label(m)}: port name ${p.name} is not an IANA service name`);
      }
    }
    if (m.object.kind === 'Service') {
      for (const p of (m.object as unknown as IService).spec?.ports ?? []) {
        if (p.name !== undefined && !PORT_NAME.test(p.name)) problems.push(`${label(m)}: port name ${p.name} is not an IANA service name`);
      }
    }
  }
  return problems;
}

export function crossReferenceProblems(manifests: readonly Manifest[]): string[] {
  const sets = manifests.filter((m) => m.object.kind === 'StatefulSet');
  if (sets.length !== 1) return [`expected one StatefulSet, found ${sets.length}`];
  const problems = [...nameProblems(manifests), ...sets.flatMap((m) => statefulSetProblems(manifests, m))];
  const usedConfigMaps = new Set(
    sets.flatMap((m) => ((m.object as unknown as IStatefulSet).spec?.template.spec?.containers ?? []).flatMap((c) => (c.envFrom ?? []).map((f) => f.configMapRef?.name))),
  );
  for (const m of manifests.filter((x) => x.object.kind === 'ConfigMap')) {
    if (!usedConfigMaps.has(m.object.metadata.name)) problems.push(`${label(m)}: no container loads it`);
  }
  return problems;
}

/** Finds the one object of `kind` (and name), for tests that change a copy. */
export function find<T>(manifests: readonly Manifest[], kind: string, name?: string): T {
  const found = manifests.find((m) => m.object.kind === kind && (name === undefined || m.object.metadata.name === name));
  if (found === undefined) throw new Error(`no ${kind}${name === undefined ? '' : `/${name}`} in the manifests`);
  return found.object as unknown as T;
}

export function scmContainer(set: IStatefulSet): IContainer {
  const container = set.spec?.template.spec?.containers.find((c) => c.name === 'scm');
  if (container === undefined) throw new Error('the StatefulSet has no container named scm');
  return container;
}
