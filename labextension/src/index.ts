/**
 * pfmagic's JupyterLab extension: cells that start with a YAML cell magic (%%pf_endpoint, …)
 * are highlighted as YAML instead of Python, the way jupysql-plugin does it for %%sql.
 *
 * Rather than reconfiguring the editor on every transaction (jupysql's way), the language is
 * a facet value computed from the document: CodeMirror recomputes it when the text changes
 * and swaps the parser only when the result changes. With the highest precedence it wins
 * over the notebook's Python language while the first line names a YAML cell magic; for
 * any other cell it adds nothing and Python stays.
 *
 * Any provider of the facet also installs CodeMirror's parse state, which reads the winning
 * language's parser: in an editor with no language of its own (a raw cell, JupyterLab's JSON
 * metadata editors) the empty result would leave none, so plain text stands in there at the
 * lowest precedence, below every language JupyterLab sets.
 */
import { language, StreamLanguage } from '@codemirror/language';
import { Prec } from '@codemirror/state';
import type { Extension } from '@codemirror/state';
import { EditorExtensionRegistry, IEditorExtensionRegistry } from '@jupyterlab/codemirror';

import { isYamlCell, pfYamlCell } from './pfcells';

const ID = 'pfmagic-labextension:yaml-cells';

const plainText = StreamLanguage.define({
  token: stream => {
    stream.skipToEnd();
    return null;
  }
});

const yamlCells: Extension = [
  Prec.highest(
    language.computeN(['doc'], state => (isYamlCell(state.doc.line(1).text) ? [pfYamlCell] : []))
  ),
  Prec.lowest(language.of(plainText))
];

const plugin = {
  id: ID,
  description: 'YAML highlighting for pfmagic cell magics (%%pf_endpoint, %%pf_deployment, …).',
  autoStart: true,
  requires: [IEditorExtensionRegistry],
  activate: (_app: unknown, registry: IEditorExtensionRegistry): void => {
    registry.addExtension(
      Object.freeze({
        name: ID,
        factory: () => EditorExtensionRegistry.createImmutableExtension(yamlCells)
      })
    );
  }
};

export default plugin;
