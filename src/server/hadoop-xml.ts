// Reads Hadoop's `*-site.xml` configuration format:
//
//   <configuration>
//     <property><name>ozone.scm.client.port</name><value>9860</value></property>
//   </configuration>
//
// A small purpose-built XML reader rather than a general one: it understands the XML declaration,
// processing instructions, comments, a DOCTYPE without an internal subset, CDATA sections, the five
// predefined entities and numeric character references. Anything else is an error naming the file
// and line, because a half-read configuration is worse than none.

export class ConfigFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'ConfigFileError';
  }
}

export interface XmlProperty {
  readonly name: string;
  readonly value: string;
  /** 1-based line of the <property> element, for error messages about its value. */
  readonly line: number;
}

interface XmlElement {
  readonly tag: string;
  readonly line: number;
  readonly children: XmlElement[];
  text: string;
}

const PREDEFINED_ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const NAME_PATTERN = /^[A-Za-z_:][-A-Za-z0-9_:.]*/;

class XmlReader {
  private pos = 0;
  private line = 1;

  constructor(
    private readonly file: string,
    private readonly text: string,
  ) {}

  private fail(reason: string, line = this.line): never {
    throw new ConfigFileError(this.file, line, reason);
  }

  private advance(count: number): void {
    for (let i = 0; i < count; i++) {
      if (this.text.charCodeAt(this.pos + i) === 10) this.line++;
    }
    this.pos += count;
  }

  private startsWith(token: string): boolean {
    return this.text.startsWith(token, this.pos);
  }

  /** Skips to just after `terminator`, returning what came before it. */
  private readUntil(terminator: string, what: string): string {
    const end = this.text.indexOf(terminator, this.pos);
    if (end < 0) this.fail(`unterminated ${what}`);
    const body = this.text.slice(this.pos, end);
    this.advance(end - this.pos + terminator.length);
    return body;
  }

  private skipWhitespace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] ?? '')) this.advance(1);
  }

  /** Skips comments, processing instructions and whitespace between elements. */
  private skipMisc(): void {
    for (;;) {
      this.skipWhitespace();
      if (this.startsWith('<!--')) {
        this.advance(4);
        this.readUntil('-->', 'comment');
      } else if (this.startsWith('<?')) {
        this.advance(2);
        this.readUntil('?>', 'processing instruction');
      } else if (this.startsWith('<!DOCTYPE')) {
        const body = this.readUntil('>', 'DOCTYPE');
        if (body.includes('[')) this.fail('DOCTYPE with an internal subset is not supported');
      } else {
        return;
      }
    }
  }

  private decodeText(raw: string, line: number): string {
    return raw.replace(/&([^;\s&<]*);?/g, (whole, name: string) => {
      if (!whole.endsWith(';')) this.fail(`unterminated entity reference "${whole}"`, line);
      const predefined = PREDEFINED_ENTITIES[name];
      if (predefined !== undefined) return predefined;
      const numeric = /^#(?:x([0-9A-Fa-f]+)|([0-9]+))$/.exec(name);
      if (numeric !== null) {
        const code = numeric[1] !== undefined ? parseInt(numeric[1], 16) : parseInt(numeric[2] ?? '', 10);
        if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff) || code === 0) {
          this.fail(`invalid character reference "${whole}"`, line);
        }
        return String.fromCodePoint(code);
      }
      return this.fail(`unknown entity "${whole}"`, line);
    });
  }

  private readName(): string {
    const match = NAME_PATTERN.exec(this.text.slice(this.pos, this.pos + 256));
    if (match === null) this.fail('expected an element name');
    this.advance(match[0].length);
    return match[0];
  }

  /** Reads `<tag attr="…">…</tag>` starting at '<'. Attributes are checked for form and ignored. */
  private readElement(): XmlElement {
    const line = this.line;
    this.advance(1);
    const tag = this.readName();
    for (;;) {
      this.skipWhitespace();
      if (this.startsWith('/>')) {
        this.advance(2);
        return { tag, line, children: [], text: '' };
      }
      if (this.startsWith('>')) {
        this.advance(1);
        break;
      }
      if (this.pos >= this.text.length) this.fail(`unterminated start tag <${tag}>`, line);
      this.readName();
      this.skipWhitespace();
      if (!this.startsWith('=')) this.fail(`expected "=" after an attribute name in <${tag}>`);
      this.advance(1);
      this.skipWhitespace();
      const quote = this.text[this.pos];
      if (quote !== '"' && quote !== "'") this.fail(`expected a quoted attribute value in <${tag}>`);
      this.advance(1);
      this.readUntil(quote, 'attribute value');
    }
    const element: XmlElement = { tag, line, children: [], text: '' };
    for (;;) {
      if (this.pos >= this.text.length) this.fail(`element <${tag}> opened on line ${line} is never closed`);
      if (this.startsWith('</')) {
        this.advance(2);
        const closing = this.readName();
        this.skipWhitespace();
        if (!this.startsWith('>')) this.fail(`malformed end tag </${closing}>`);
        this.advance(1);
        if (closing !== tag) this.fail(`end tag </${closing}> does not match <${tag}> opened on line ${line}`);
        return element;
      }
      if (this.startsWith('<!--')) {
        this.advance(4);
        this.readUntil('-->', 'comment');
      } else if (this.startsWith('<![CDATA[')) {
        this.advance(9);
        element.text += this.readUntil(']]>', 'CDATA section');
      } else if (this.startsWith('<?')) {
        this.advance(2);
        this.readUntil('?>', 'processing instruction');
      } else if (this.startsWith('<')) {
        element.children.push(this.readElement());
      } else {
        const textLine = this.line;
        const next = this.text.indexOf('<', this.pos);
        const end = next < 0 ? this.text.length : next;
        const raw = this.text.slice(this.pos, end);
        this.advance(end - this.pos);
        element.text += this.decodeText(raw, textLine);
      }
    }
  }

  readDocument(): XmlElement {
    if (this.text.charCodeAt(0) === 0xfeff) this.pos = 1;
    this.skipMisc();
    if (!this.startsWith('<') || this.startsWith('</')) this.fail('expected the <configuration> root element');
    const root = this.readElement();
    this.skipMisc();
    if (this.pos < this.text.length) this.fail('unexpected content after the root element');
    return root;
  }
}

const PROPERTY_CHILDREN = new Set(['name', 'value', 'final', 'description', 'source', 'tag']);

/**
 * Parses the text of a Hadoop configuration file. `file` is used only in error messages.
 * Later definitions of a name override earlier ones, as Hadoop does; names and values are trimmed.
 * A property without a <value> sets nothing (Hadoop treats it as unset).
 */
export function parseHadoopXml(file: string, text: string): XmlProperty[] {
  const root = new XmlReader(file, text).readDocument();
  if (root.tag !== 'configuration') {
    throw new ConfigFileError(file, root.line, `root element is <${root.tag}>, expected <configuration>`);
  }
  const properties: XmlProperty[] = [];
  for (const element of root.children) {
    if (element.tag !== 'property') {
      throw new ConfigFileError(file, element.line, `unexpected element <${element.tag}> in <configuration>, expected <property>`);
    }
    let name: string | undefined;
    let value: string | undefined;
    for (const child of element.children) {
      if (!PROPERTY_CHILDREN.has(child.tag)) {
        throw new ConfigFileError(file, child.line, `unexpected element <${child.tag}> in <property>`);
      }
      if (child.children.length > 0) {
        throw new ConfigFileError(file, child.line, `<${child.tag}> must contain text only`);
      }
      if (child.tag === 'name') name = child.text.trim();
      if (child.tag === 'value') value = child.text.trim();
    }
    if (name === undefined || name.length === 0) {
      throw new ConfigFileError(file, element.line, '<property> has no <name>');
    }
    if (value !== undefined) properties.push({ name, value, line: element.line });
  }
  return properties;
}
