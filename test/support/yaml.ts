import { parseAllDocuments } from 'yaml';

/** Every document of a multi-document YAML stream (`---`), as plain values; a parse error throws. */
export function yamlDocuments(text: string): unknown[] {
  return parseAllDocuments(text).map((document) => {
    const [error] = document.errors;
    if (error) throw error;
    return document.toJS();
  });
}
