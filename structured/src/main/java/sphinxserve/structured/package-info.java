/**
 * Constrained decoding: GBNF, regex and choice grammars compiled against a tokenizer's vocabulary into a
 * {@link sphinxserve.api.TokenConstraint} whose per-step token mask keeps the output a valid prefix.
 *
 * <p>Owns: {@link sphinxserve.structured.Grammar} (parsing and checks), {@link sphinxserve.structured.Grammars}
 * (compile with budgets), {@link sphinxserve.structured.CompiledGrammar} (shared, thread-safe),
 * {@link sphinxserve.structured.GrammarMatcher} (one output), {@link sphinxserve.structured.TokenVocabulary}.
 *
 * <p>May import: {@code api} and the JDK only.
 */
package sphinxserve.structured;
