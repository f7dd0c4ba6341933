//! Elastic tabstops exactly as kubectl lays out its tables.
//!
//! kubectl prints tables through `github.com/liggitt/tabwriter` (Go's `text/tabwriter` plus a
//! `RememberWidths` flag), built by cli-runtime's `printers.GetNewTabWriter` with minwidth 6,
//! tabwidth 4, padding 3, pad character `' '` and `RememberWidths`. This is a port of that
//! algorithm, including its quirks, so kubeline's tables match kubectl byte for byte:
//! - a column is as wide as its widest cell plus 3, and at least 6;
//! - the last cell of a line is not part of any column and is never padded;
//! - a line with a single cell (such as an empty line) flushes everything before it;
//! - widths are remembered per column index across flushes until [`TabWriter::forget_widths`].
//!
//! Widths count Unicode scalar values, as Go counts runes.

/// kubectl's `tabwriterMinWidth`.
const MIN_WIDTH: usize = 6;
/// kubectl's `tabwriterPadding`.
const PADDING: usize = 3;

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    /// Bytes of text in the cell.
    size: usize,
    /// Runes of text in the cell.
    width: usize,
    /// Whether the cell was terminated by a tab (as opposed to a line end).
    htab: bool,
}

/// A tab-separated text writer that aligns columns on flush.
#[derive(Debug)]
pub struct TabWriter {
    buf: String,
    pos: usize,
    cell: Cell,
    lines: Vec<Vec<Cell>>,
    widths: Vec<usize>,
    maxwidths: Vec<usize>,
    out: String,
    min_width: usize,
    padding: usize,
    remember_widths: bool,
}

impl Default for TabWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TabWriter {
    /// A writer with kubectl's settings.
    pub fn new() -> Self {
        let mut w = Self {
            buf: String::new(),
            pos: 0,
            cell: Cell::default(),
            lines: Vec::new(),
            widths: Vec::new(),
            maxwidths: Vec::new(),
            out: String::new(),
            min_width: MIN_WIDTH,
            padding: PADDING,
            remember_widths: true,
        };
        w.reset();
        w
    }

    /// A plain Go `text/tabwriter` with pad character `' '` and no flags, as kubectl's
    /// `describe` builds it (`tabwriter.Init(buf, minwidth, 8, padding, ' ', 0)`): no remembered
    /// widths.
    pub fn with_layout(min_width: usize, padding: usize) -> Self {
        let mut w = Self::new();
        w.min_width = min_width;
        w.padding = padding;
        w.remember_widths = false;
        w
    }

    /// Takes the text formatted so far.
    pub fn take_output(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// Forgets the remembered column widths (`SetRememberedWidths(nil)`).
    pub fn forget_widths(&mut self) {
        self.maxwidths.clear();
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.cell = Cell::default();
        self.lines.clear();
        self.widths.clear();
        self.lines.push(Vec::new());
    }

    fn append(&mut self, text: &str) {
        self.buf.push_str(text);
        self.cell.size += text.len();
    }

    fn update_width(&mut self) {
        self.cell.width += self.buf[self.pos..].chars().count();
        self.pos = self.buf.len();
    }

    fn terminate_cell(&mut self, htab: bool) -> usize {
        self.cell.htab = htab;
        let cell = std::mem::take(&mut self.cell);
        let line = self
            .lines
            .last_mut()
            .expect("there is always a current line");
        line.push(cell);
        line.len()
    }

    /// Writes text; cells end at `\t` or `\v`, lines at `\n` or `\f`.
    pub fn write(&mut self, text: &str) {
        let mut n = 0;
        for (i, ch) in text.char_indices() {
            if matches!(ch, '\t' | '\u{0b}' | '\n' | '\u{0c}') {
                self.append(&text[n..i]);
                self.update_width();
                n = i + 1;
                let ncells = self.terminate_cell(ch == '\t');
                if ch == '\n' || ch == '\u{0c}' {
                    self.lines.push(Vec::new());
                    if ch == '\u{0c}' || ncells == 1 {
                        // A line with one cell does not affect the layout of what follows.
                        self.flush();
                    }
                }
            }
        }
        self.append(&text[n..]);
    }

    /// Formats and emits everything buffered.
    pub fn flush(&mut self) {
        if self.cell.size > 0 {
            self.terminate_cell(false);
        }
        let nlines = self.lines.len();
        self.format(0, 0, nlines);
        self.reset();
    }

    fn write_padding(&mut self, textw: usize, cellw: usize) {
        for _ in textw..cellw {
            self.out.push(' ');
        }
    }

    fn write_lines(&mut self, mut pos: usize, line0: usize, line1: usize) -> usize {
        for i in line0..line1 {
            for j in 0..self.lines[i].len() {
                let c = self.lines[i][j];
                if c.size > 0 {
                    self.out.push_str(&self.buf[pos..pos + c.size]);
                    pos += c.size;
                }
                if j < self.widths.len() {
                    self.write_padding(c.width, self.widths[j]);
                }
            }
            if i + 1 == self.lines.len() {
                // The last buffered line has no newline yet: emit the incomplete cell as is.
                self.out.push_str(&self.buf[pos..pos + self.cell.size]);
                pos += self.cell.size;
            } else {
                self.out.push('\n');
            }
        }
        pos
    }

    fn format(&mut self, pos0: usize, mut line0: usize, line1: usize) -> usize {
        let mut pos = pos0;
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // A cell exists in this column: this line starts a block of lines that have it.
            pos = self.write_lines(pos, line0, this);
            line0 = this;

            let mut width = self.min_width;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(line[column].width + self.padding);
                this += 1;
            }

            // RememberWidths: a column is never narrower than it was before a flush.
            let depth = self.widths.len();
            // (A plain text/tabwriter gives each block its own widths.)
            if self.remember_widths {
                if self.maxwidths.len() < depth {
                    let missing = self.widths[self.maxwidths.len()..].to_vec();
                    self.maxwidths.extend(missing);
                }
                if self.maxwidths.len() == depth {
                    self.maxwidths.push(width);
                } else if self.maxwidths[depth] > width {
                    width = self.maxwidths[depth];
                } else {
                    self.maxwidths[depth] = width;
                }
            }

            self.widths.push(width);
            pos = self.format(pos, line0, this);
            self.widths.pop();
            line0 = this;
            // Go's loop increments past the line that ended the block; that line has no cell
            // in this column, so skipping it changes nothing.
            this += 1;
        }
        self.write_lines(pos, line0, line1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str) -> String {
        let mut w = TabWriter::new();
        w.write(text);
        w.flush();
        w.take_output()
    }

    #[test]
    fn columns_are_widest_cell_plus_three_and_at_least_six() {
        assert_eq!(
            render("NAME\tREADY\tAGE\na\t1/1\t5m\nlonger-name\t0/1\t10d\n"),
            "NAME          READY   AGE\na             1/1     5m\nlonger-name   0/1     10d\n"
        );
        assert_eq!(render("A\tB\nx\ty\n"), "A     B\nx     y\n");
    }

    #[test]
    fn last_cell_is_not_padded_and_runes_count_as_one() {
        assert_eq!(render("é\tb\nxy\tc\n"), "é     b\nxy    c\n");
        assert_eq!(
            render("NAME\tLABELS\nab\t<none>\n"),
            "NAME   LABELS\nab     <none>\n"
        );
    }

    #[test]
    fn empty_cells_are_padded() {
        assert_eq!(
            render("A\tB\tC\n\tx\ty\n"),
            "A     B     C\n      x     y\n"
        );
    }

    #[test]
    fn remembered_widths_survive_a_flush_until_forgotten() {
        let mut w = TabWriter::new();
        w.write("LONGER-NAME\tX\n");
        w.flush();
        w.write("A\tB\n");
        w.flush();
        assert_eq!(w.take_output(), "LONGER-NAME   X\nA             B\n");
        w.forget_widths();
        w.write("A\tB\n");
        w.flush();
        assert_eq!(w.take_output(), "A     B\n");
    }

    #[test]
    fn a_single_cell_line_flushes() {
        // The blank line ends the first block; the second block gets its own widths, but
        // remembered widths keep it at least as wide.
        let mut w = TabWriter::new();
        w.write("A\tB\nxxxxxxxx\ty\n\nC\tD\n");
        w.flush();
        assert_eq!(
            w.take_output(),
            "A          B\nxxxxxxxx   y\n\nC          D\n"
        );
    }
}

#[cfg(test)]
mod go_fixtures {
    //! Cases generated with `github.com/liggitt/tabwriter` configured as kubectl configures it
    //! (`printers.GetNewTabWriter`): each `input` written at once, then flushed; `yaml` holds
    //! Go's output.

    use serde_json::Value;

    #[test]
    fn layout_matches_go_byte_for_byte() {
        let cases: Vec<Value> =
            serde_json::from_str(include_str!("testdata/go_tabwriter.json")).unwrap();
        for case in &cases {
            let input: String = serde_json::from_value(case["input"].clone()).unwrap();
            let mut w = super::TabWriter::new();
            w.write(&input);
            w.flush();
            assert_eq!(
                w.take_output(),
                case["yaml"].as_str().unwrap(),
                "input {input:?}"
            );
        }
    }
}
