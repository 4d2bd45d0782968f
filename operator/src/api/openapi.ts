/**
 * A TypeBox schema as the OpenAPI v3 of a CRD: plain objects, without TypeBox's own markers (`~kind`,
 * `~optional`…, hidden already unless TypeBox is set to show them), and with each node's keys in one
 * order: type and description first, then properties and required, then the node's other keywords in
 * the order they are written, then items. TypeBox puts required before properties and
 * items before the keywords; YAML keeps key order, so crds/ would churn without this. It descends through
 * properties and items, the only nesting the TaskQueue schema has.
 */
import type { TSchema } from 'typebox';

type OpenApi = Record<string, unknown>;

export function openApi(schema: TSchema): OpenApi {
  const { type, description, properties, required, items, ...keywords } = openKeys(schema);
  return {
    ...(type !== undefined ? { type } : {}),
    ...(description !== undefined ? { description } : {}),
    ...(properties !== undefined
      ? {
          properties: Object.fromEntries(
            Object.entries(properties as Record<string, TSchema>).map(([name, property]) => [name, openApi(property)]),
          ),
        }
      : {}),
    ...(required !== undefined ? { required } : {}),
    ...keywords,
    ...(items !== undefined ? { items: openApi(items as TSchema) } : {}),
  };
}

/** The schema's own enumerable keys, less TypeBox's markers. Values (defaults, CEL rules) are data. */
function openKeys(schema: TSchema): OpenApi {
  return Object.fromEntries(Object.entries(schema).filter(([key]) => !key.startsWith('~')));
}
