// ESLint: @eslint/js and typescript-eslint's recommended rules over the TypeScript sources and the .mjs tools.
import { defineConfig } from 'eslint/config';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Node's globals for the plain-JavaScript tools (TypeScript files get them from @types/node,
// and typescript-eslint turns no-undef off there); listed here rather than adding the `globals` package.
const node = Object.fromEntries(
  ['process', 'console', 'Buffer', 'URL', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'structuredClone',
    'TextEncoder', 'TextDecoder', 'fetch', 'AbortController', 'queueMicrotask'].map((name) => [name, 'readonly']),
);

export default defineConfig(
  { ignores: ['dist*/**', 'docs/api/**', 'node_modules/**', 'fixtures/**', 'data/**', 'runs/**'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  { files: ['**/*.mjs', '**/*.js'], languageOptions: { globals: node } },
  {
    rules: {
      // `const { offset: _, ...rest } = entry` is how the code drops a field from a copy; `_`-names mark what is unused on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
