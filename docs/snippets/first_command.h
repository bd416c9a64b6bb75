/*
 * What sections 1 to 4 of docs/tutorial-first-command.md define, seen from
 * a test file that has them at file scope: section 6's snippet is compiled
 * after this (docs/snippets.sh, <!-- snippet: with ... -->). The types and
 * event types are the tutorial program's own; only the decider, which the
 * program builds in main, is declared here.
 */
#ifndef ESC_DOCS_FIRST_COMMAND_H
#define ESC_DOCS_FIRST_COMMAND_H

#define main tutorial_first_command_main
int main(void);
#include "../tutorial/first_command.c"
#undef main

extern const esc_decider cart_decider;

#endif
