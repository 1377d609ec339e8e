/* placeholder: the console page (issue 20) replaces this file */
