#!/usr/bin/env node
// Compile contracts/src with the pinned solc-js against the pinned OpenZeppelin and write
// one artifact per contract (ABI + bytecode) to fogctl/chain/artifacts/, where the CLI
// reads them: it needs neither node nor solc at run time.
//
//   node build.js               write the artifacts
//   node build.js --out DIR     write them to DIR instead (tests compare byte for byte)
//
// solc-js output is deterministic, so a rebuild of unchanged sources is byte-identical.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const HERE = __dirname;
const SRC = path.join(HERE, 'src');
const DEFAULT_OUT = path.join(HERE, '..', 'fogctl', 'chain', 'artifacts');
const SETTINGS = {
  evmVersion: 'cancun',
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

function listSources(dir, prefix) {
  const out = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const rel = prefix ? `${prefix}/${name}` : name;
    if (fs.statSync(full).isDirectory()) out.push(...listSources(full, rel));
    else if (name.endsWith('.sol')) out.push(rel);
  }
  return out;
}

function findImports(importPath) {
  const candidates = [path.join(HERE, 'node_modules', importPath), path.join(HERE, importPath)];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, 'utf8') };
  }
  return { error: `not found: ${importPath}` };
}

function main(argv) {
  const i = argv.indexOf('--out');
  const outDir = i >= 0 ? path.resolve(argv[i + 1]) : DEFAULT_OUT;
  const sources = {};
  for (const rel of listSources(SRC, '')) {
    sources[`src/${rel}`] = { content: fs.readFileSync(path.join(SRC, rel), 'utf8') };
  }
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) {
    // Warnings in the pinned OpenZeppelin sources are not ours to fix.
    const file = (e.sourceLocation && e.sourceLocation.file) || '';
    if (e.severity !== 'error' && file.startsWith('@openzeppelin/')) continue;
    process.stderr.write((e.formattedMessage || e.message) + '\n');
  }
  if (errors.length) process.exit(1);
  fs.mkdirSync(outDir, { recursive: true });
  const version = solc.version();
  const names = [];
  for (const sourceName of Object.keys(sources)) {
    for (const [name, c] of Object.entries(output.contracts[sourceName] || {})) {
      if (!c.evm.bytecode.object) continue; // abstract contracts and interfaces
      const artifact = {
        contractName: name,
        sourceName,
        compiler: { name: 'solc-js', version, settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer } },
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
      };
      fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 1) + '\n');
      names.push(`${name} (${c.evm.deployedBytecode.object.length / 2} bytes)`);
    }
  }
  process.stderr.write(`solc ${version}: ${names.join(', ')} -> ${outDir}\n`);
}

main(process.argv.slice(2));
