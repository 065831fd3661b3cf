// Readers for the deployment files, for the tests: docker-compose.yml as docker-compose itself
// resolves it (anchors, merges and defaults applied), YAML files as JSON, the Dockerfile's
// instructions. YAML is parsed by PyYAML, which docker-compose (a Python program) always brings.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DOCKER_COMPOSE = '/usr/bin/docker-compose';
export const COMPOSE_FILE = `${ROOT}docker-compose.yml`;
/** The secure variant, applied on top of COMPOSE_FILE. */
export const COMPOSE_TLS_FILE = `${ROOT}docker-compose.tls.yml`;

export interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: unknown;
  environment?: Record<string, string | null>;
  volumes?: string[];
  ports?: { published?: number | string; target: number }[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export function yamlToJson(text: string): unknown {
  const json = execFileSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: text,
    encoding: 'utf8',
  });
  return JSON.parse(json) as unknown;
}

/** Every document of a multi-document YAML stream (`---` separated); empty documents are dropped. */
export function yamlDocuments(text: string): unknown[] {
  const json = execFileSync(
    'python3',
    ['-c', 'import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)'],
    { input: text, encoding: 'utf8' },
  );
  return JSON.parse(json) as unknown[];
}

/** The compose file after docker-compose's own resolution (`docker-compose config`). */
export function resolvedCompose(...overrides: string[]): ComposeFile {
  const files = [COMPOSE_FILE, ...overrides].flatMap((f) => ['-f', f]);
  const text = execFileSync(DOCKER_COMPOSE, [...files, 'config'], { cwd: ROOT, encoding: 'utf8' });
  return yamlToJson(text) as ComposeFile;
}

export function readYaml(relativePath: string): unknown {
  return yamlToJson(readFileSync(`${ROOT}${relativePath}`, 'utf8'));
}

export const SCM_SERVICES = ['scm1', 'scm2', 'scm3'] as const;
export const ENV_PREFIX = 'OZONE-SITE.XML_';

/** Dockerfile instructions as [KEYWORD, arguments], continuation lines joined, comments dropped. */
export function dockerfileInstructions(): [string, string][] {
  const joined = readFileSync(`${ROOT}Dockerfile`, 'utf8').replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'))
    .map((line) => {
      const space = line.indexOf(' ');
      return [line.slice(0, space).toUpperCase(), line.slice(space + 1).trim()] as [string, string];
    });
}
