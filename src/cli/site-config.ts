// Which ozone-site.xml a command reads, as Ozone's tools choose it: `--config FILE`, else
// `$OZONE_CONF_DIR/ozone-site.xml` when that file exists. `OZONE-SITE.XML_<key>` environment
// variables apply on top either way.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ENV_PREFIX } from '../server/config.js';
import type { CommandContext } from './command.js';

export function siteXmlPath(ctx: CommandContext): string | undefined {
  const explicit = ctx.string('config');
  if (explicit !== undefined) return explicit;
  const confDir = ctx.io.env['OZONE_CONF_DIR'];
  if (confDir !== undefined && confDir !== '' && existsSync(join(confDir, 'ozone-site.xml'))) return join(confDir, 'ozone-site.xml');
  return undefined;
}

/** Whether any SCM setting comes from the environment (the container images configure that way). */
export function environmentConfiguresScm(env: NodeJS.ProcessEnv): boolean {
  return Object.keys(env).some((name) => name.startsWith(`${ENV_PREFIX}ozone.scm.`));
}
