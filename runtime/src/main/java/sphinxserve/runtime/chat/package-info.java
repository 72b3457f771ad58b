/**
 * Chat prompts of Hugging Face LLaMA-family checkpoints: the {@code chat_template} of {@code tokenizer_config.json}
 * rendered as transformers' {@code apply_chat_template} renders it, and turned into token ids without letting
 * message text become a control token.
 *
 * <p>Owns: rendering ({@link sphinxserve.runtime.chat.JinjaChatTemplate}, on jinjava configured and extended to
 * behave like Python's Jinja: trim_blocks/lstrip_blocks, Python {@code str} methods, {@code raise_exception},
 * {@code strftime_now}, transformers' {@code tojson}, Jinja's precedence of {@code not}), its failures
 * ({@link sphinxserve.runtime.chat.ChatTemplateException}, never a silently empty or truncated prompt), the
 * conversation value ({@link sphinxserve.runtime.chat.ChatTurn}, tool calls and tool results included; tool
 * definitions travel beside it as transformers passes them), the tool-call format a template implies
 * ({@link sphinxserve.runtime.chat.ToolCallFormat}) and the injection-safe encoding
 * ({@link sphinxserve.runtime.chat.ChatPromptEncoder}: special-token strings in message contents are kept as text,
 * the template's own special tokens become ids), and the sandbox every render runs in
 * ({@link sphinxserve.runtime.chat.ChatTemplateLimits}: message content is data, never template source; budgets of
 * output characters, iterations, call depth and wall time; only Jinja's library and Python str/dict/list methods).
 *
 * <p>Reading {@code tokenizer_config.json} itself (which template, which BOS/EOS strings, add_bos_token) is the
 * caller's; this package takes the template text and those values.
 */
package sphinxserve.runtime.chat;
