// Warren's Java kernel: one stateful JShell session of a sandbox.
//
//   java --source 17 Kernel.java
//
// The protocol of python.py: on stdin a JSON header line {"len": N, ...} and N bytes of code
// per cell; the cell's output on stdout and stderr; events on fd 3, one JSON object per line
// (result, error, done). A cell is split into snippets (declarations, statements,
// expressions) that JShell evaluates in this process, so classes, methods, variables and
// imports live on between cells; the value of the last expression is the cell's result.
// SIGINT stops the running snippet; the session lives on.

import java.io.ByteArrayOutputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.JShell;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;

public class Kernel {
    static PrintStream events;

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : (s == null ? "" : s).toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static void emit(String json) {
        System.out.flush();
        System.err.flush();
        events.println(json);
        events.flush();
    }

    static void error(String name, String value, String trace) {
        emit("{\"type\":\"error\",\"name\":" + quote(name) + ",\"value\":" + quote(value) + ",\"traceback\":"
             + quote(trace) + "}");
    }

    static String readLine(InputStream in) throws Exception {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (int c; (c = in.read()) != '\n'; ) {
            if (c < 0) return null;
            b.write(c);
        }
        return b.toString(StandardCharsets.UTF_8);
    }

    /* Evaluates one snippet; false when the cell must stop (an error was reported). */
    static boolean eval(JShell shell, String source, boolean last, int cell) {
        List<SnippetEvent> results = shell.eval(source);
        for (SnippetEvent e : results) {
            if (e.exception() != null) {
                Throwable t = e.exception();
                String name = t instanceof EvalException ? ((EvalException) t).getExceptionClassName()
                                                         : t.getClass().getName();
                StringBuilder trace = new StringBuilder(name + ": " + t.getMessage() + "\n");
                for (StackTraceElement el : t.getStackTrace())
                    trace.append("\tat ").append(el.getMethodName().isEmpty() ? "" : el.getMethodName() + " ")
                         .append("(cell ").append(cell).append(", line ").append(el.getLineNumber()).append(")\n");
                error(name, t.getMessage(), trace.toString());
                return false;
            }
            if (e.status() == Snippet.Status.REJECTED) {
                StringBuilder msg = new StringBuilder();
                shell.diagnostics(e.snippet()).forEach((Diag d) -> msg.append(d.getMessage(null)).append("\n"));
                error("CompilationError", msg.toString().trim(), source);
                return false;
            }
            if (last && e.value() != null && e.snippet().kind() == Snippet.Kind.EXPRESSION
                || last && e.value() != null && e.snippet().subKind() == Snippet.SubKind.TEMP_VAR_EXPRESSION_SUBKIND) {
                emit("{\"type\":\"result\",\"data\":{\"text/plain\":" + quote(e.value()) + "}}");
            }
        }
        return true;
    }

    public static void main(String[] args) throws Exception {
        events = new PrintStream(new FileOutputStream("/dev/fd/3"), true, StandardCharsets.UTF_8);
        JShell shell = JShell.builder().executionEngine("local").out(System.out).err(System.err).build();
        SourceCodeAnalysis analysis = shell.sourceCodeAnalysis();
        shell.eval("import java.util.*; import java.util.stream.*; import java.io.*; import java.nio.file.*;");
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), sig -> shell.stop());
        emit("{\"type\":\"ready\",\"language\":\"java\",\"pid\":" + ProcessHandle.current().pid() + "}");
        InputStream in = System.in;
        for (int count = 1; ; count++) {
            String header = readLine(in);
            if (header == null) return;
            int len = Integer.parseInt(header.replaceAll(".*\"len\":(\\d+).*", "$1"));
            String code = new String(in.readNBytes(len), StandardCharsets.UTF_8);
            long started = System.nanoTime();
            boolean ok = true;
            String rest = code;
            while (ok && !rest.isBlank()) {
                SourceCodeAnalysis.CompletionInfo info = analysis.analyzeCompletion(rest);
                String source = info.source();
                if (source == null || info.completeness() == SourceCodeAnalysis.Completeness.DEFINITELY_INCOMPLETE) {
                    error("CompilationError", "the cell ends in the middle of a statement", rest);
                    ok = false;
                    break;
                }
                rest = info.remaining();
                ok = eval(shell, source, rest.isBlank(), count);
            }
            long ms = (System.nanoTime() - started) / 1_000_000;
            emit("{\"type\":\"done\",\"status\":\"" + (ok ? "ok" : "error") + "\",\"execution_count\":" + count
                 + ",\"duration_ms\":" + ms + "}");
        }
    }
}
