//! One ELF object (the program or a library) reduced to what the analysis needs: its code,
//! the names of its functions, what it exports and imports, its entry points, and the
//! function addresses its data holds.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use goblin::elf::{Elf, header, program_header, reloc, section_header, sym};

use crate::Error;

/// Where a reference points: into the same object, or to a symbol resolved in the global
/// scope by name (the loader's lookup, so interposition is honored).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Local(u64),
    Import(String),
}

/// A loaded ELF object.
#[derive(Debug)]
pub struct Object {
    pub path: PathBuf,
    /// A short name for chains: the file name without its `.so…` suffix.
    pub name: String,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub interpreter: Option<String>,
    /// ET_EXEC: absolute addresses, so immediates and data words may hold code addresses.
    pub fixed_address: bool,
    /// Entry points the loader runs: e_entry, DT_INIT/DT_FINI, init/fini/preinit arrays,
    /// IRELATIVE resolvers; each with what it is.
    pub entries: Vec<(u64, String)>,
    /// Defined, visible function symbols of the dynamic table: name → addresses.
    pub exports: HashMap<String, Vec<u64>>,
    /// Function names by address (symbol table and dynamic table), sorted by address.
    pub names: Vec<(u64, String)>,
    /// GOT slot address → what the loader puts there.
    pub got: HashMap<u64, Target>,
    /// Function addresses stored in data (relocations, or words of a fixed-address object).
    pub data_refs: Vec<Target>,
    /// Executable sections: (address, bytes).
    pub code: Vec<(u64, Vec<u8>)>,
}

const R_X86_64_64: u32 = reloc::R_X86_64_64;
const R_GLOB_DAT: u32 = reloc::R_X86_64_GLOB_DAT;
const R_JUMP_SLOT: u32 = reloc::R_X86_64_JUMP_SLOT;
const R_RELATIVE: u32 = reloc::R_X86_64_RELATIVE;
const R_IRELATIVE: u32 = reloc::R_X86_64_IRELATIVE;

impl Object {
    /// Reads and parses the ELF file at `path`.
    pub fn load(path: &Path) -> Result<Object, Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, &e))?;
        if !meta.is_file() {
            return Err(Error::NotRegular(path.to_path_buf()));
        }
        let data = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
        Object::parse(path, &data)
    }

    /// Parses ELF bytes; `path` names the object.
    pub fn parse(path: &Path, data: &[u8]) -> Result<Object, Error> {
        if !data.starts_with(b"\x7fELF") {
            return Err(Error::NotElf(path.to_path_buf()));
        }
        let elf = Elf::parse(data).map_err(|e| Error::BadElf(path.to_path_buf(), e.to_string()))?;
        if elf.header.e_machine != header::EM_X86_64 || !elf.is_64 {
            return Err(Error::NotX86_64(
                path.to_path_buf(),
                header::machine_to_str(elf.header.e_machine).to_string(),
            ));
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match file_name.find(".so") {
            Some(i) if i > 0 => file_name[..i].to_string(),
            _ => file_name.clone(),
        };
        let mut obj = Object {
            path: path.to_path_buf(),
            name,
            soname: elf.soname.map(str::to_string),
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
            rpath: split_paths(&elf.rpaths),
            runpath: split_paths(&elf.runpaths),
            interpreter: elf.interpreter.map(str::to_string),
            fixed_address: elf.header.e_type == header::ET_EXEC,
            entries: Vec::new(),
            exports: HashMap::new(),
            names: Vec::new(),
            got: HashMap::new(),
            data_refs: Vec::new(),
            code: Vec::new(),
        };
        for sh in &elf.section_headers {
            if sh.sh_type == section_header::SHT_PROGBITS
                && sh.sh_flags & u64::from(section_header::SHF_EXECINSTR) != 0
                && let Some(bytes) = data.get(sh.file_range().unwrap_or_default())
            {
                obj.code.push((sh.sh_addr, bytes.to_vec()));
            }
        }
        if obj.code.is_empty() {
            // No section headers (stripped hard): fall back to executable segments.
            for ph in &elf.program_headers {
                if ph.p_type == program_header::PT_LOAD
                    && ph.p_flags & program_header::PF_X != 0
                    && let Some(bytes) = data.get(ph.file_range())
                {
                    obj.code.push((ph.p_vaddr, bytes.to_vec()));
                }
            }
        }
        obj.code.sort_by_key(|c| c.0);
        obj.read_symbols(&elf);
        obj.read_relocations(&elf);
        obj.read_relr(&elf, data);
        obj.read_entries(&elf, data);
        if obj.fixed_address {
            obj.scan_data_words(&elf, data);
        }
        Ok(obj)
    }

    /// Whether `addr` lies in one of the executable sections.
    pub fn is_code(&self, addr: u64) -> bool {
        self.code
            .iter()
            .any(|(start, bytes)| addr >= *start && addr < start + bytes.len() as u64)
    }

    /// The name of the function at `addr`, if a symbol names it.
    pub fn name_at(&self, addr: u64) -> Option<&str> {
        self.names
            .binary_search_by_key(&addr, |n| n.0)
            .ok()
            .map(|i| self.names[i].1.as_str())
    }

    fn read_symbols(&mut self, elf: &Elf) {
        let mut names: HashMap<u64, String> = HashMap::new();
        let mut add = |addr: u64, name: &str, global: bool| {
            if name.is_empty() {
                return;
            }
            // One name per address: prefer a global one without leading underscores (chown
            // over __chown), then the shorter.
            let better = |old: &str| {
                let rank = |n: &str| (n.starts_with('_'), n.len());
                global && rank(name) < rank(old)
            };
            match names.get(&addr) {
                Some(old) if !better(old) => {}
                _ => {
                    names.insert(addr, name.to_string());
                }
            }
        };
        let is_func = |s: &sym::Sym| {
            matches!(s.st_type(), sym::STT_FUNC | sym::STT_GNU_IFUNC) && s.st_shndx != 0
        };
        for s in elf.syms.iter().filter(is_func) {
            if let Some(n) = elf.strtab.get_at(s.st_name) {
                add(s.st_value, n, s.st_bind() != sym::STB_LOCAL);
            }
        }
        for s in elf.dynsyms.iter().filter(is_func) {
            let Some(n) = elf.dynstrtab.get_at(s.st_name) else {
                continue;
            };
            add(s.st_value, n, true);
            let visible = matches!(
                s.st_bind(),
                sym::STB_GLOBAL | sym::STB_WEAK | sym::STB_GNU_UNIQUE
            ) && matches!(s.st_visibility(), sym::STV_DEFAULT | sym::STV_PROTECTED);
            if visible {
                let v = self.exports.entry(n.to_string()).or_default();
                if !v.contains(&s.st_value) {
                    v.push(s.st_value);
                }
            }
        }
        self.names = names.into_iter().collect();
        self.names.sort();
    }

    fn read_relocations(&mut self, elf: &Elf) {
        let sym_name = |i: usize| -> Option<String> {
            let s = elf.dynsyms.get(i)?;
            let n = elf.dynstrtab.get_at(s.st_name)?;
            (!n.is_empty() && s.st_type() != sym::STT_OBJECT).then(|| n.to_string())
        };
        for r in elf.dynrelas.iter().chain(elf.pltrelocs.iter()) {
            let addend = r.r_addend.unwrap_or(0) as u64;
            let target = match r.r_type {
                R_RELATIVE if self.is_code(addend) => Target::Local(addend),
                R_IRELATIVE => {
                    self.entries.push((addend, "ifunc resolver".into()));
                    continue;
                }
                R_64 | R_GLOB_DAT | R_JUMP_SLOT if r.r_sym != 0 => match sym_name(r.r_sym) {
                    Some(n) => Target::Import(n),
                    None => continue,
                },
                _ => continue,
            };
            if r.r_type == R_GLOB_DAT || r.r_type == R_JUMP_SLOT || r.r_type == R_RELATIVE {
                self.got.insert(r.r_offset, target.clone());
            }
            // A PLT slot only serves calls through its stub; every other slot or word holds
            // an address the program can pass around.
            if r.r_type != R_JUMP_SLOT {
                self.data_refs.push(target);
            }
        }
    }

    /// DT_RELR (packed relative relocations, as in Debian 12's glibc): the words they name
    /// hold their target in the file.
    fn read_relr(&mut self, elf: &Elf, data: &[u8]) {
        const DT_RELRSZ: u64 = 35;
        const DT_RELR: u64 = 36;
        let Some(dynamic) = &elf.dynamic else {
            return;
        };
        let dt = |tag| dynamic_value(dynamic, tag);
        let (Some(at), Some(size)) = (dt(DT_RELR), dt(DT_RELRSZ)) else {
            return;
        };
        let mut places = Vec::new();
        let mut base = 0u64;
        for k in 0..size / 8 {
            let Some(entry) = read_word(elf, data, at + k * 8) else {
                return;
            };
            if entry & 1 == 0 {
                places.push(entry);
                base = entry + 8;
            } else {
                for bit in 1..64 {
                    if entry >> bit & 1 == 1 {
                        places.push(base + (bit - 1) * 8);
                    }
                }
                base += 63 * 8;
            }
        }
        for place in places {
            if let Some(v) = read_word(elf, data, place).filter(|&v| self.is_code(v)) {
                self.got.insert(place, Target::Local(v));
                self.data_refs.push(Target::Local(v));
            }
        }
    }

    fn read_entries(&mut self, elf: &Elf, data: &[u8]) {
        if elf.header.e_entry != 0 && self.is_code(elf.header.e_entry) {
            self.entries
                .push((elf.header.e_entry, "entry point".into()));
        }
        let Some(dynamic) = &elf.dynamic else {
            return;
        };
        let info = &dynamic.info;
        for (addr, what) in [(info.init, "DT_INIT"), (info.fini, "DT_FINI")] {
            if addr != 0 {
                self.entries.push((addr, what.into()));
            }
        }
        let mut arrays = vec![
            (info.init_array, info.init_arraysz, "init_array"),
            (info.fini_array, info.fini_arraysz, "fini_array"),
        ];
        let dt = |tag| dynamic_value(dynamic, tag);
        if let (Some(a), Some(sz)) = (
            dt(goblin::elf::dynamic::DT_PREINIT_ARRAY),
            dt(goblin::elf::dynamic::DT_PREINIT_ARRAYSZ),
        ) {
            arrays.push((a, sz as usize, "preinit_array"));
        }
        let relative: HashMap<u64, u64> = elf
            .dynrelas
            .iter()
            .filter(|r| r.r_type == R_RELATIVE)
            .map(|r| (r.r_offset, r.r_addend.unwrap_or(0) as u64))
            .collect();
        for (start, size, what) in arrays {
            for slot in (start..start + size as u64).step_by(8) {
                let addr = relative
                    .get(&slot)
                    .copied()
                    .or_else(|| read_word(elf, data, slot));
                if let Some(a) = addr.filter(|&a| self.is_code(a)) {
                    self.entries.push((a, what.into()));
                }
            }
        }
    }

    /// In a fixed-address object, data holds code addresses as plain words.
    fn scan_data_words(&mut self, elf: &Elf, data: &[u8]) {
        for sh in &elf.section_headers {
            let alloc = sh.sh_flags & u64::from(section_header::SHF_ALLOC) != 0;
            let exec = sh.sh_flags & u64::from(section_header::SHF_EXECINSTR) != 0;
            if !alloc || exec || sh.sh_type != section_header::SHT_PROGBITS {
                continue;
            }
            let Some(bytes) = data.get(sh.file_range().unwrap_or_default()) else {
                continue;
            };
            for w in bytes.chunks_exact(8) {
                let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                if self.is_code(v) {
                    self.data_refs.push(Target::Local(v));
                }
            }
        }
    }
}

const R_64: u32 = R_X86_64_64;

fn split_paths(list: &[&str]) -> Vec<String> {
    list.iter()
        .flat_map(|p| p.split(':'))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The 8-byte word at virtual address `addr`, through the loadable segments.
fn read_word(elf: &Elf, data: &[u8], addr: u64) -> Option<u64> {
    let ph = elf.program_headers.iter().find(|p| {
        p.p_type == program_header::PT_LOAD
            && addr >= p.p_vaddr
            && addr + 8 <= p.p_vaddr + p.p_filesz
    })?;
    let off = (addr - ph.p_vaddr + ph.p_offset) as usize;
    Some(u64::from_le_bytes(data.get(off..off + 8)?.try_into().ok()?))
}

/// The value of the first dynamic-section entry with `tag`.
fn dynamic_value(dynamic: &goblin::elf::Dynamic, tag: u64) -> Option<u64> {
    dynamic
        .dyns
        .iter()
        .find(|d| d.d_tag == tag)
        .map(|d| d.d_val)
}
