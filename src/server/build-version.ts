// The version of this build, for `scm --version`: the same one a node reports in scm_build_info
// (src/metrics/build-info.ts finds it), re-exported here because the CLI may import the server but
// not the metrics.
export { packageVersion } from '../metrics/build-info.js';
