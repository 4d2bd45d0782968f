/**
 * What the operator runs of `@kubernetes/client-node`: its KubeConfig (credentials, TLS) and its
 * informers. Everything else the operator needs from the package is types.
 *
 * The package root loads all of its generated API clients and models (1,001 modules, 25 MB of source)
 * whatever one imports from it, and no file under it is narrower: `dist/config.js`, where KubeConfig
 * lives, imports the generated index itself. So `npm run build` replaces this module's compiled
 * `dist/runtime/kubernetes.js` with these two exports bundled from the package root and tree-shaken
 * to what they reach (./bundle-kubernetes.ts); run from its sources, it is the plain re-export below.
 */
export { KubeConfig, makeInformer } from '@kubernetes/client-node';
