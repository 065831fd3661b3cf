// ESLint flat config: typescript-eslint's recommended rules with type information for TypeScript,
// so that floating promises (an un-awaited fsync, an unhandled stream error) are caught at lint
// time; ESLint's recommended rules for the few plain JavaScript launchers and scripts.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The direction of dependencies between the folders of src/ (DESIGN.md, "Layout and dependency
// direction"): each folder may import the folders listed here and the leaf modules src/*.ts; leaf
// modules import nothing of ours. Enforced with no-restricted-imports on the relative specifiers
// (`../server/x.js` in src/raft is an error); test/structure/import-rules.test.ts proves the rules
// bite. Dynamic import() is not checked (src/ has none).
const ALLOWED_FOLDER_IMPORTS = {
  cli: ['api', 'client', 'server'],
  client: ['api'],
  server: ['api', 'raft', 'storage', 'statemachine', 'snapshot', 'metrics'],
  snapshot: ['statemachine'],
  raft: [],
  storage: [],
  statemachine: [],
  metrics: [],
  api: [],
};

/** no-restricted-imports for the files of src/<folder>/: `../<other>/…` only for the allowed folders. */
function folderImportRule(folder) {
  const allowed = [folder, ...ALLOWED_FOLDER_IMPORTS[folder]];
  const targets = ALLOWED_FOLDER_IMPORTS[folder].length > 0 ? ALLOWED_FOLDER_IMPORTS[folder].map((f) => `src/${f}`).join(', ') + ' and ' : '';
  return [
    'error',
    {
      patterns: [
        {
          regex: `^\\.\\./(?!(?:${allowed.join('|')})/)[^/]+/`,
          message: `src/${folder} may import only ${targets}the leaf modules src/*.ts (DESIGN.md: layout and dependency direction).`,
        },
      ],
    },
  ];
}

const importDirection = [
  ...Object.keys(ALLOWED_FOLDER_IMPORTS).map((folder) => ({
    files: [`src/${folder}/**/*.ts`],
    rules: { 'no-restricted-imports': folderImportRule(folder) },
  })),
  {
    files: ['src/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^\\.', message: 'a leaf module src/*.ts imports nothing of ours, so that every folder may import it.' }] },
      ],
    },
  },
];

const nodeGlobals = {
  process: 'readonly',
  console: 'readonly',
  URL: 'readonly',
  Buffer: 'readonly',
  setTimeout: 'readonly',
  clearTimeout: 'readonly',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'eslint.config.js'] },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: nodeGlobals },
  },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test()/describe() return promises the runner itself tracks.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...importDirection,
);
