/**
 * A CodeMirror 6 language for pfmagic's YAML cells: the first line is the `%%pf_...` magic
 * (its name and flags tokenised as such), every later line is YAML (@codemirror/legacy-modes).
 */
import { StreamLanguage, StringStream } from '@codemirror/language';
import { yaml } from '@codemirror/legacy-modes/mode/yaml';

/** The cell magics whose body is az-ml YAML (pfmagic/magics/cells.py; a test keeps them in sync). */
export const YAML_CELL_MAGICS = ['pf_model', 'pf_endpoint', 'pf_deployment', 'pf_connection'];

const MAGIC_LINE = new RegExp(`^%%(${YAML_CELL_MAGICS.join('|')})(?=\\s|$)`);

/** Whether a cell's first line makes its body YAML. */
export function isYamlCell(firstLine: string): boolean {
  return MAGIC_LINE.test(firstLine);
}

type YamlState = Record<string, unknown>;

interface CellState {
  /** Still on the cell's first (magic) line. */
  magicLine: boolean;
  inner: YamlState;
}

export const pfYamlCell = StreamLanguage.define<CellState>({
  name: 'pfmagic-yaml',
  startState: (indentUnit: number) => ({
    magicLine: true,
    inner: yaml.startState!(indentUnit) as YamlState
  }),
  // the default copy would share `inner` between two states
  copyState: (state: CellState) => ({ magicLine: state.magicLine, inner: { ...state.inner } }),
  token(stream: StringStream, state: CellState): string | null {
    if (state.magicLine) {
      const style = magicLineToken(stream);
      if (stream.eol()) {
        state.magicLine = false;
      }
      return style;
    }
    return yaml.token(stream, state.inner);
  },
  blankLine(state: CellState, indentUnit: number) {
    state.magicLine = false;
    yaml.blankLine?.(state.inner, indentUnit);
  },
  languageData: yaml.languageData
});

/** `%%pf_endpoint NAME --flag VALUE`: the magic, its flags, its arguments. */
function magicLineToken(stream: StringStream): string | null {
  if (stream.eatSpace()) {
    return null;
  }
  if (stream.sol() && stream.match(/^%%\w+/)) {
    return 'keyword';
  }
  if (stream.match(/^--?[\w-]+/)) {
    return 'meta';
  }
  stream.match(/^\S+/);
  return 'string';
}
