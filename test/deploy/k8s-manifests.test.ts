// deploy/kubernetes/ validated offline: the objects parse, validate against the Kubernetes OpenAPI
// schemas of a pinned version with no undeclared fields, and agree with each other and with the
// node's own configuration (test/deploy/k8s-manifests.ts). Each check is also shown to reject a
// broken copy of the manifests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import {
  crossReferenceProblems,
  expandKubernetesVars,
  find,
  KUBERNETES_SCHEMA_VERSION,
  loadManifests,
  parseQuantity,
  scmContainer,
  schemaProblems,
  strictFieldProblems,
  type Manifest,
} from './k8s-manifests.js';
import { ENV_PREFIX } from './deploy-files.js';

const manifests = loadManifests();

/** A deep copy of the manifests with one change applied. */
function changed(change: (copy: Manifest[]) => void): Manifest[] {
  const copy = structuredClone(manifests);
  change(copy);
  return copy;
}

const statefulSet = (copy: Manifest[]): IStatefulSet => find<IStatefulSet>(copy, 'StatefulSet');
const podSpec = (copy: Manifest[]) => {
  const spec = statefulSet(copy).spec?.template.spec;
  assert.ok(spec);
  return spec;
};
const container = (copy: Manifest[]): IContainer => scmContainer(statefulSet(copy));
const configData = (copy: Manifest[]): Record<string, string> => {
  const data = find<IConfigMap>(copy, 'ConfigMap', 'scm-config').data;
  assert.ok(data);
  return data;
};
const envVar = (copy: Manifest[], name: string) => {
  const variable = container(copy).env?.find((e) => e.name === name);
  assert.ok(variable, `no env ${name}`);
  return variable;
};

test(`deploy/kubernetes: the objects parse and validate against the Kubernetes ${KUBERNETES_SCHEMA_VERSION} OpenAPI schemas`, () => {
  assert.deepEqual(
    manifests.map((m) => `${m.object.kind}/${m.object.metadata.name}`).sort(),
    ['ConfigMap/scm-config', 'PodDisruptionBudget/scm', 'Service/scm', 'StatefulSet/scm'],
  );
  assert.deepEqual(schemaProblems(manifests), []);
});

test('deploy/kubernetes: no object has a field its schema does not declare (strict field validation)', () => {
  assert.deepEqual(strictFieldProblems(manifests), []);
});

test('the schema checks have teeth: wrong types, enum values, unknown kinds and misspelt fields are rejected', () => {
  const wrongType = changed((c) => {
    const port = container(c).ports?.[0];
    assert.ok(port);
    (port as { containerPort: unknown }).containerPort = 'client';
  });
  assert.match(schemaProblems(wrongType).join('\n'), /StatefulSet\/scm: .*containerPort must be integer/);

  const numberInConfigMap = changed((c) => ((configData(c) as Record<string, unknown>)[`${ENV_PREFIX}ozone.scm.client.port`] = 9860));
  assert.match(schemaProblems(numberInConfigMap).join('\n'), /ConfigMap\/scm-config: .*must be string/);

  const badEnum = changed((c) => ((container(c) as { imagePullPolicy: string }).imagePullPolicy = 'Sometimes'));
  assert.match(schemaProblems(badEnum).join('\n'), /imagePullPolicy must be equal to one of the allowed values/);

  const unknownKind = changed((c) => c.push({ file: 'extra.yaml', object: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } } }));
  assert.match(schemaProblems(unknownKind).join('\n'), /extra\.yaml: Deployment\/x: no schema for apiVersion apps\/v1 kind Deployment/);

  const misspelt = changed((c) => {
    const scm = container(c) as unknown as Record<string, unknown>;
    scm['readinesProbe'] = scm['readinessProbe'];
    delete scm['readinessProbe'];
  });
  assert.deepEqual(schemaProblems(misspelt), [], 'the OpenAPI schemas alone allow unknown fields');
  assert.match(strictFieldProblems(misspelt).join('\n'), /StatefulSet\/scm: .*'"readinesProbe"' does not exist in type 'IContainer'/);

  const misspeltDeep = changed((c) => {
    const budget = find<IPodDisruptionBudget>(c, 'PodDisruptionBudget').spec as Record<string, unknown>;
    budget['maxUnavialable'] = budget['maxUnavailable'];
  });
  assert.match(strictFieldProblems(misspeltDeep).join('\n'), /PodDisruptionBudget\/scm: .*maxUnavialable/);
});

test('cross references: selectors, claims, ports, probes, the preStop hook, env keys and each pod’s own config agree', () => {
  assert.deepEqual(crossReferenceProblems(manifests), []);
});

test('the cross-reference check has teeth', () => {
  const cases: [string, (copy: Manifest[]) => void, RegExp][] = [
    [
      'a Service selector that matches no pod',
      (c) => {
        const spec = find<IService>(c, 'Service', 'scm').spec;
        assert.ok(spec?.selector);
        spec.selector['app.kubernetes.io/component'] = 'scm-server';
      },
      /Service\/scm: selector .* matches no pod of StatefulSet scm/,
    ],
    [
      'a ConfigMap key the API server refuses',
      (c) => (configData(c)['OZONE-SITE.XML ozone.scm.grpc.port'] = '9895'),
      /OZONE-SITE\.XML ozone\.scm\.grpc\.port is not a valid ConfigMap key/,
    ],
    [
      'a ConfigMap key envFrom would skip',
      (c) => (configData(c)['9-OZONE-SITE.XML_ozone.scm.grpc.port'] = '9895'),
      /9-OZONE-SITE\.XML_ozone\.scm\.grpc\.port is not a valid environment variable name, so envFrom would skip it/,
    ],
    [
      'a port name longer than 15 characters',
      (c) => {
        const port = find<IService>(c, 'Service', 'scm').spec?.ports?.[0];
        assert.ok(port);
        port.name = 'client-protocol-port';
      },
      /port name client-protocol-port is not an IANA service name/,
    ],
    [
      'a Service port aimed at a port the container does not declare',
      (c) => {
        const port = find<IService>(c, 'Service', 'scm').spec?.ports?.[0];
        assert.ok(port);
        port.targetPort = 'cleint';
      },
      /Service\/scm: port client targets cleint, which container scm does not declare/,
    ],
    [
      'a headless Service that hides pods that are not ready',
      (c) => {
        const spec = find<IService>(c, 'Service', 'scm').spec;
        assert.ok(spec);
        spec.publishNotReadyAddresses = false;
      },
      /must publish not-ready pods/,
    ],
    [
      'a mount that names no claim',
      (c) => {
        const mount = container(c).volumeMounts?.[0];
        assert.ok(mount);
        mount.name = 'metadata';
      },
      /volumeMount metadata \(\/data\) names no volumeClaimTemplate or volume[\s\S]*volumeClaimTemplate data is not mounted/,
    ],
    [
      'scm.db outside the claim',
      (c) => (configData(c)[`${ENV_PREFIX}ozone.scm.db.dirs`] = '/var/lib/scm'),
      /pod scm-0: ozone\.scm\.db\.dirs \/var\/lib\/scm is not on a PersistentVolumeClaim/,
    ],
    [
      'a key the node does not know',
      (c) => (configData(c)[`${ENV_PREFIX}ozone.scm.ratis.prot`] = '9894'),
      /ozone\.scm\.ratis\.prot is not a configuration key the node accepts/,
    ],
    [
      'a key the node accepts but ignores',
      (c) => (configData(c)[`${ENV_PREFIX}ozone.scm.names`] = 'scm-0'),
      /ozone\.scm\.names is accepted but has no effect on this node/,
    ],
    [
      'a malformed value',
      (c) => (configData(c)[`${ENV_PREFIX}ozone.scm.ha.ratis.log.purge.gap`] = 'a thousand'),
      /pod scm-0: its environment does not load: .*ozone\.scm\.ha\.ratis\.log\.purge\.gap/,
    ],
    [
      'a variable that is not configuration',
      (c) => container(c).env?.push({ name: 'SCM_DEBUG', value: '1' }),
      /sets SCM_DEBUG, which is neither an OZONE-SITE\.XML_ variable nor one of/,
    ],
    [
      'more replicas than configured SCM nodes',
      (c) => {
        const spec = statefulSet(c).spec;
        assert.ok(spec);
        spec.replicas = 4;
      },
      /pod scm-3: its environment does not load: .*scm-3 is not one of the nodes/,
    ],
    [
      'node ids that are not the pod names',
      (c) => (configData(c)[`${ENV_PREFIX}ozone.scm.nodes.scmservice`] = 'scm-0,scm-1'),
      /pod scm-0: the SCM nodes are scm-0,scm-1, but the pods are scm-0,scm-1,scm-2 \(replicas 3\)/,
    ],
    [
      'a peer address outside the headless Service',
      (c) => (envVar(c, `${ENV_PREFIX}ozone.scm.address.scmservice.scm-1`).value = 'scm-1.scm-peers.$(POD_NAMESPACE).svc'),
      /node scm-1 is addressed as scm-1\.scm-peers\.scm-test\.svc, not by its pod DNS name scm-1\.scm\.scm-test\.svc/,
    ],
    [
      'a reference to a variable not defined before it',
      (c) => (envVar(c, `${ENV_PREFIX}ozone.scm.address.scmservice.scm-2`).value = 'scm-2.scm.$(NAMESPACE).svc'),
      /env OZONE-SITE\.XML_ozone\.scm\.address\.scmservice\.scm-2: \$\(NAMESPACE\) is not defined before it/,
    ],
    [
      'an envFrom of a ConfigMap that does not exist',
      (c) => {
        const from = container(c).envFrom?.[0]?.configMapRef;
        assert.ok(from);
        from.name = 'scm-settings';
      },
      /envFrom names ConfigMap scm-settings, which the manifests do not define/,
    ],
    [
      'client addresses for the admin commands that differ from the configured ones',
      (c) => (envVar(c, 'SCM_CLIENT_ADDRESSES').value = 'scm-0.scm.$(POD_NAMESPACE).svc:9860'),
      /SCM_CLIENT_ADDRESSES is scm-0\.scm\.scm-test\.svc:9860, the configured client addresses are/,
    ],
    [
      'a container port that is not the configured one',
      (c) => {
        const http = container(c).ports?.find((p) => p.name === 'http');
        assert.ok(http);
        http.containerPort = 8080;
      },
      /container port http is 8080, the node listens on 9876/,
    ],
    [
      'readiness on the liveness endpoint',
      (c) => {
        const get = container(c).readinessProbe?.httpGet;
        assert.ok(get);
        get.path = '/healthz';
      },
      /readinessProbe: probes \/healthz, expected \/readyz/,
    ],
    [
      'a PodDisruptionBudget that lets the quorum go',
      (c) => {
        const spec = find<IPodDisruptionBudget>(c, 'PodDisruptionBudget').spec;
        assert.ok(spec);
        spec.maxUnavailable = 2;
      },
      /maxUnavailable 2 of 3 voters leaves fewer than a quorum of 2/,
    ],
    [
      'pods that may share a Kubernetes node',
      (c) => {
        const affinity = podSpec(c).affinity;
        assert.ok(affinity);
        delete affinity.podAntiAffinity;
      },
      /no required pod anti-affinity on kubernetes\.io\/hostname/,
    ],
    [
      'ordered pod management',
      (c) => {
        const spec = statefulSet(c).spec;
        assert.ok(spec);
        spec.podManagementPolicy = 'OrderedReady';
      },
      /podManagementPolicy must be Parallel/,
    ],
    [
      'a grace period too short for the preStop transfer',
      (c) => (podSpec(c).terminationGracePeriodSeconds = 30),
      /terminationGracePeriodSeconds 30 leaves no room for the preStop transfer \(20 s\) and the stop: at least 52/,
    ],
    [
      'a preStop script the image does not have',
      (c) => {
        const exec = container(c).lifecycle?.preStop?.exec;
        assert.ok(exec?.command);
        exec.command[1] = '/opt/scm/bin/step-down.mjs';
      },
      /preStop .* must run a script of bin\//,
    ],
    [
      'root',
      (c) => {
        const security = podSpec(c).securityContext;
        assert.ok(security);
        security.runAsUser = 0;
      },
      /pod securityContext must run as the image's user 1001/,
    ],
    [
      'a heap cap above the memory limit',
      (c) => (envVar(c, 'NODE_OPTIONS').value = '--max-old-space-size=1024'),
      /NODE_OPTIONS must cap the V8 heap .* below the memory limit \(1024 MiB\)/,
    ],
    [
      'a request above its limit',
      (c) => {
        const requests = container(c).resources?.requests;
        assert.ok(requests);
        requests['memory'] = '2Gi';
      },
      /memory: request 2Gi exceeds limit 1Gi/,
    ],
    [
      'metrics annotations on the wrong port',
      (c) => {
        const annotations = statefulSet(c).spec?.template.metadata?.annotations;
        assert.ok(annotations);
        annotations['prometheus.io/port'] = '9860';
      },
      /pod annotations must say prometheus\.io\/scrape "true", path \/prom, port 9876/,
    ],
  ];
  for (const [what, change, expected] of cases) {
    const problems = crossReferenceProblems(changed(change));
    assert.match(problems.join('\n'), expected, `${what}: not caught; problems were:\n${problems.join('\n')}`);
  }
});

test("expandKubernetesVars follows the kubelet's rules", () => {
  const env: Record<string, string> = { A: 'x', 'OZONE-SITE.XML_k': 'y' };
  const lookup = (name: string): string | undefined => env[name];
  assert.equal(expandKubernetesVars('$(A).$(OZONE-SITE.XML_k)', lookup), 'x.y');
  assert.equal(expandKubernetesVars('$$(A) $$ $A $(B) $(A', lookup), '$(A) $ $A $(B) $(A');
  assert.equal(expandKubernetesVars('cost: 5$', lookup), 'cost: 5$');
});

test('parseQuantity reads Kubernetes quantities', () => {
  assert.equal(parseQuantity('500m'), 0.5);
  assert.equal(parseQuantity('2'), 2);
  assert.equal(parseQuantity('512Mi'), 512 * 2 ** 20);
  assert.equal(parseQuantity('1G'), 1e9);
  assert.ok(Number.isNaN(parseQuantity('1 GB')));
  assert.ok(Number.isNaN(parseQuantity(undefined)));
});
